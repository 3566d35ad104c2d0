"""Metrics by name or class path: a new metric module registers itself, no table to edit.

A metric class (a torchmetrics ``Metric``) declares ``registered_name`` and ``default_inputs`` (the keys
of the callbacks' outputs protocol it reads, e.g. ``("mel_pred", "mel_target")``). :func:`metric_class`
finds it by that name among the modules of ``articulate.metrics`` (imported on the first lookup of an
unknown name), or by its full class path (``articulate.metrics.contour.ContourMSD``; plugins' own
metrics too), so configs can name metrics either way.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from articulate.metrics.dedup import SampleMetric

_FOUND: dict[str, type] = {}
_SCANNED = False


def _scan() -> None:
    global _SCANNED
    if _SCANNED:
        return
    import articulate.metrics as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in ("registry", "backbones", "weights", "functional", "dedup"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            name = obj.registered_name if isinstance(obj, type) and issubclass(obj, SampleMetric) else None
            if name and obj.__module__ == module.__name__:
                if name in _FOUND and _FOUND[name] is not obj:
                    raise ValueError(f"two metrics are registered as {name!r}: {_FOUND[name]} and {obj}")
                _FOUND[name] = obj
    _SCANNED = True


def metric_names() -> list[str]:
    _scan()
    return sorted(_FOUND)


def metric_class(name: str) -> type[SampleMetric]:
    """The metric class for a registered name or a class path; ValueError naming the choices otherwise."""
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            raise ValueError(f"unknown metric class {name!r}") from None
        if not (isinstance(cls, type) and issubclass(cls, SampleMetric)):
            raise ValueError(f"{name} is not an articulate.metrics SampleMetric (DDP-exact rows keyed by sample_index)")
        return cls
    if name not in _FOUND:
        _scan()
    if name not in _FOUND:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(metric_names())} or give a class path")
    return _FOUND[name]


def default_inputs(name: str) -> tuple[str, str]:
    inputs = metric_class(name).default_inputs
    if not inputs or len(inputs) != 2:
        raise ValueError(f"metric {name!r} declares no default_inputs (pred key, target key); give them in `inputs`")
    return tuple(inputs)


def build(name: str, **options: Any):
    return metric_class(name)(**options)
