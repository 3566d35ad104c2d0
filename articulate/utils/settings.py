"""Grouped settings (frozen dataclasses) from their YAML or Python forms."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def as_settings(cls: type[T], value: Any) -> T:
    """``cls`` from itself, a dict of its fields (YAML, a checkpoint's hyperparameters), a jsonargparse Namespace or
    None (its defaults); an unknown field is a ValueError naming it."""
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, dict):
        value = vars(value) if not is_dataclass(value) else {f.name: getattr(value, f.name) for f in fields(value)}
    unknown = sorted(set(value) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}")
    return cls(**value)
