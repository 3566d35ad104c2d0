"""Grouped settings (frozen dataclasses) from their YAML or Python forms."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def as_settings(cls: type[T], value: Any) -> T:
    """``cls`` from itself, a dict of its fields (YAML, a checkpoint's hyperparameters) or None (its defaults); an
    unknown field is a ValueError naming it, any other type a TypeError."""
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise TypeError(f"expected {cls.__name__} or dict, got {type(value).__name__}")
    unknown = sorted(set(value) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {unknown}")
    return cls(**value)
