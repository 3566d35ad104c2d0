"""Where generated and derived data is cached."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$ARTICULATE_CACHE`` or ``~/.cache/articulate`` (phantom cohorts, encoder feature caches)."""
    root = os.environ.get("ARTICULATE_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "articulate"
    path.mkdir(parents=True, exist_ok=True)
    return path
