"""Components from their YAML form (``class_path`` + ``init_args``), for files we do not trust.

A checkpoint's hyperparameters name the classes that rebuild its networks. Importing and calling
an arbitrary name is running code (``os.system`` is a callable too), so :func:`instantiate` only
imports modules of this project's core (``articulate.*``), and only builds ``torch.nn.Module``
subclasses or classes the core marks as components (samplers, losses). Anything else is an
``InputError`` naming the file, before any import happens.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from articulate.errors import InputError

# Module prefixes a checkpoint may name. The framework layers (lightning_modules...) are not here:
# inference rebuilds networks from the core alone. Plugin directions add theirs (Direction.packages).
CORE_PREFIXES = ("articulate.",)


def trusted_prefixes() -> tuple[str, ...]:
    from articulate.directions import trusted_packages

    return CORE_PREFIXES + trusted_packages()


def _allowed(class_path: str, prefixes: tuple[str, ...]) -> bool:
    return any(class_path.startswith(p) for p in prefixes) and ".." not in class_path


def import_class(class_path: str, source: str | Path | None = None, prefixes: tuple[str, ...] | None = None) -> type:
    """The class named ``class_path`` (``package.module.Class``), refused unless it lies under ``prefixes``
    (default: the core and the registered directions' packages)."""
    prefixes = trusted_prefixes() if prefixes is None else prefixes
    if not isinstance(class_path, str) or not _allowed(class_path, prefixes):
        raise InputError(source, f"refusing class {class_path!r}: only {', '.join(p + '*' for p in prefixes)} "
                                 "classes are built from a file")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise InputError(source, f"class {class_path} is not available in this installation "
                                 "(a checkpoint of another version, or a misspelt class_path)") from None
    if not isinstance(cls, type):
        raise InputError(source, f"{class_path} is not a class")
    return cls


def is_component(cls: type) -> bool:
    """nn.Modules, and core classes that declare themselves components (``component = True``)."""
    import torch.nn as nn

    return issubclass(cls, nn.Module) or bool(getattr(cls, "component", False))


def is_spec(value: Any) -> bool:
    return isinstance(value, dict) and "class_path" in value


def instantiate(spec: Any, source: str | Path | None = None, prefixes: tuple[str, ...] | None = None) -> Any:
    """Build ``{"class_path": ..., "init_args": {...}}`` (nested specs too); other values pass through."""
    prefixes = trusted_prefixes() if prefixes is None else prefixes
    if isinstance(spec, list):
        return [instantiate(v, source, prefixes) for v in spec]
    if not is_spec(spec):
        return spec
    cls = import_class(spec["class_path"], source, prefixes)
    if not is_component(cls):
        raise InputError(source, f"refusing class {spec['class_path']}: not a network or component class")
    kwargs = {k: instantiate(v, source, prefixes) for k, v in (spec.get("init_args") or {}).items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise InputError(source, f"cannot build {spec['class_path']}: {err}") from None
