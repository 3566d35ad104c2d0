"""Errors a user can act on. The CLI prints them as one line and exits non-zero (no traceback)."""

from __future__ import annotations

from pathlib import Path


class ArticulateError(Exception):
    """Base class of every error the CLI reports as a plain message."""


class InputError(ArticulateError, ValueError):
    """A user's file (or folder) cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


def require_file(path: str | Path, nonempty: bool = True) -> Path:
    """``path`` as a Path when it is an existing regular file (and, with ``nonempty``, not 0 bytes), else the
    ``InputError`` a reader raises for it."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a file")
    if nonempty and path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    return path


class MissingPretrainedError(ArticulateError):
    """A pretrained model/weights file is not available offline; the message says how to get it."""
