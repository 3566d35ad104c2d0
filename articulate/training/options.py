"""The one way tool commands declare and check their options.

Every tool's ``build_parser()`` returns a :class:`Parser`. Options are declared with what they are, so that
checking them is not left to each command:

* :func:`number` - an int/float option with its range, checked by :func:`articulate.validate.number` after
  parsing (finite, whole, in range): ``--hop 0`` and ``--hop -5`` are both refused, ``--guidance nan`` too;
* :func:`size` (``HxW``) and :func:`number_list` (``0,1,2``) - the same checks per element, and a size is
  bounded by the memory one frame of it would take;
* :func:`device` - ``cpu``/``cuda``/``cuda:N``/``mps``, and the device must exist (``no CUDA device: use
  --device cpu``);
* :func:`path` with ``role="input"`` or ``role="output"`` - after parsing, an output that resolves to one
  of the inputs (symlinks, hard links) is refused (:func:`articulate.utils.atomic.check_not_inputs`).

A problem with a value is an :class:`~articulate.errors.InputError` (``articulate <cmd>: error: --steps must be
at least 1, got 0``, exit 1); a usage error (unknown option, missing argument) is one line too, exit 2.
The bad-input suite enumerates these declarations, so an option declared here is tested the day it is added
(and a plain ``type=int``/``type=float`` option is refused by that suite).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from articulate import validate
from articulate.errors import InputError

__all__ = ["Parser", "number", "number_list", "size", "device", "path", "spec_of", "OptionSpec", "json_safe", "dumps"]

MAX_SIDE = 16384  # pixels: a frame side beyond this is not an image of the tongue


@dataclass
class OptionSpec:
    """What an option is: ``kind`` number | list | size | device | path; ``role`` input | output for paths."""

    kind: str
    bounds: dict[str, Any] = field(default_factory=dict)
    role: str | None = None

    def check(self, value: Any, flag: str) -> Any:
        if value is None:
            return None
        if self.kind == "number":
            if isinstance(value, list):
                return [validate.number(v, flag, **self.bounds) for v in value]
            return validate.number(value, flag, **self.bounds)
        if self.kind == "list":
            if isinstance(value, (list, tuple)):
                return list(value)
            parts = [p.strip() for p in str(value).split(",")]
            if not parts or any(p == "" for p in parts):
                raise InputError(None, f"{flag} {value!r}: expected comma-separated numbers, e.g. 0,1,2")
            return [validate.number(p, flag, **self.bounds) for p in parts]
        if self.kind == "size":
            if isinstance(value, tuple):
                return value
            parts = str(value).lower().replace(" ", "").split("x")
            if len(parts) != 2:
                raise InputError(None, f"{flag} {value!r}: expected HxW, e.g. 240x320")
            h, w = (validate.number(p, f"{flag} height" if i == 0 else f"{flag} width", integer=True, low=2,
                                    high=MAX_SIDE) for i, p in enumerate(parts))
            # one frame's pixel grids and scan-conversion maps (about ten float64 arrays of H x W, as FanConverter)
            validate.check_memory(10 * 8 * h * w, f"{flag} {h}x{w}")
            return h, w
        if self.kind == "device":
            return validate.device(value, flag)
        return value


def spec_of(action: argparse.Action) -> OptionSpec | None:
    return getattr(action, "articulate_spec", None)


def _declare(parser: argparse.ArgumentParser, flags: tuple[str, ...], spec: OptionSpec, kwargs: dict) -> argparse.Action:
    if "type" in kwargs:
        raise TypeError("declared options are checked after parsing: do not give type=")
    action = parser.add_argument(*flags, **kwargs)
    action.articulate_spec = spec
    return action


def number(parser, *flags: str, integer: bool = False, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, **kwargs) -> argparse.Action:
    """An int (``integer``) or float option in ``[low, high]`` (open ends with ``low_open``/``high_open``)."""
    kwargs.setdefault("metavar", "N" if integer else "X")
    bounds = {"integer": integer, "low": low, "high": high, "low_open": low_open, "high_open": high_open}
    return _declare(parser, flags, OptionSpec("number", bounds), kwargs)


def number_list(parser, *flags: str, integer: bool = True, low: float | None = None, high: float | None = None,
                **kwargs) -> argparse.Action:
    """Comma-separated numbers (``0,1,2``), each in ``[low, high]``."""
    kwargs.setdefault("metavar", "N,N,...")
    return _declare(parser, flags, OptionSpec("list", {"integer": integer, "low": low, "high": high}), kwargs)


def size(parser, *flags: str, **kwargs) -> argparse.Action:
    """``HxW`` in pixels (each side 2..16384, one frame must fit in memory) -> ``(H, W)``."""
    kwargs.setdefault("metavar", "HxW")
    return _declare(parser, flags, OptionSpec("size"), kwargs)


def device(parser, *flags: str, **kwargs) -> argparse.Action:
    """A torch device that exists here (default None: the command picks cuda when available, else cpu)."""
    flags = flags or ("--device",)
    kwargs.setdefault("default", None)
    kwargs.setdefault("help", "cpu, cuda, cuda:N (default: cuda when available, else cpu)")
    return _declare(parser, flags, OptionSpec("device"), kwargs)


def path(parser, *flags: str, role: str, **kwargs) -> argparse.Action:
    """A file or folder the command reads (``role="input"``) or writes (``role="output"``)."""
    if role not in ("input", "output"):
        raise ValueError(f"role must be input or output, got {role!r}")
    return _declare(parser, flags, OptionSpec("path", role=role), kwargs)


def _flag(action: argparse.Action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


class Parser(argparse.ArgumentParser):
    """argparse with the rules above: declared options checked after parsing, one-line usage errors."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        self.check(ns)
        return ns, extras

    def check(self, ns: argparse.Namespace) -> None:
        """Check every declared option of this parser's level; then refuse outputs that are inputs."""
        from articulate.utils.atomic import check_not_inputs

        roles: dict[str, dict[str, Any]] = {"input": {}, "output": {}}
        for action in self._actions:
            spec = spec_of(action)
            if spec is None or not hasattr(ns, action.dest):
                continue
            value = spec.check(getattr(ns, action.dest), _flag(action))
            setattr(ns, action.dest, value)
            if spec.role and value is not None:
                for i, v in enumerate(value if isinstance(value, list) else [value]):
                    roles[spec.role][_flag(action) + (f"[{i}]" if isinstance(value, list) else "")] = v
        if roles["input"] and roles["output"]:
            # an output folder that files are written into may be the input folder: commands check those files
            check_not_inputs(roles["output"], roles["input"], into_folders=True)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN as ``null`` and every infinity as the string ``"inf"`` / ``"-inf"`` (JSON has
    no such numbers: Python's ``Infinity``/``NaN`` tokens are not JSON)."""
    import math

    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
        return json_safe(value.item())
    return value


def dumps(value: Any, **kwargs) -> str:
    """Strict JSON (:func:`json_safe`, then ``allow_nan=False``)."""
    import json

    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
