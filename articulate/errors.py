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


class MissingPretrainedError(ArticulateError):
    """A pretrained model/weights file is not available offline; the message says how to get it."""
