"""Progress where users look: a bar on a terminal, plain periodic lines when stderr goes to a file.

:class:`Progress` is one counted job (subjects of a phantom cohort, frames, ...): a tqdm bar when stderr is a
terminal; otherwise a line such as ``articulate phantom: 12/44 subjects, 1m05s elapsed, ~2m53s left`` at
most every ``ARTICULATE_PROGRESS_S`` seconds (30 by default; the first after that long, so short jobs stay
quiet), and a last line when it ends if any was printed.

Deep loops (the diffusion sampler's steps) call :func:`report`, which does nothing unless a command
turned reporting on with :func:`activate` (the ``articulate`` dispatcher does for its tools), so library
use stays silent.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "activate", "deactivate", "report", "interval_s", "duration"]


def interval_s() -> float:
    try:
        return max(0.0, float(os.environ.get("ARTICULATE_PROGRESS_S", "30")))
    except ValueError:
        return 30.0


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """``n`` of ``total`` units done; ``update()`` as work completes, ``close()`` at the end (or use ``with``)."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "step", quiet: bool = False,
                 stream: TextIO | None = None, every_s: float | None = None, leave: bool = True):
        self.desc, self.total, self.unit, self.quiet = desc, total, unit, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = interval_s() if every_s is None else every_s
        self.n = 0
        self.info: dict[str, Any] = {}
        self.started = self.last = time.monotonic()
        self.lines = 0
        self.bar = None
        if not quiet and _isatty(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=leave, dynamic_ncols=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, **info: Any) -> None:
        self.set(self.n + n, **info)

    def set(self, n: int, total: int | None = None, **info: Any) -> None:
        if total is not None:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
        delta, self.n = n - self.n, n
        self.info.update(info)
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(delta)
            if info:
                self.bar.set_postfix({k: _short(v) for k, v in info.items()}, refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.line()

    def text(self) -> str:
        elapsed = time.monotonic() - self.started
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        plural = "es" if self.unit.endswith(("s", "sh", "ch", "x")) else "s"
        parts = [f"{self.desc}: {done} {self.unit}{plural}"]
        parts += [f"{k} {_short(v)}" for k, v in self.info.items()]
        parts.append(f"{duration(elapsed)} elapsed")
        if self.total and 0 < self.n < self.total:
            parts.append(f"~{duration(elapsed / self.n * (self.total - self.n))} left")
        return ", ".join(parts)

    def line(self) -> None:
        self.lines += 1
        print(self.text(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines and not self.quiet:
            self.line()
            self.lines = 0


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# --------------------------------------------------------------------------------------------- deep loops

_active: dict[str, Any] | None = None


def activate(prefix: str, quiet: bool = False) -> None:
    """Turn :func:`report` on for this process (``prefix`` starts every line, e.g. ``articulate synthesize-uti``)."""
    global _active
    deactivate()
    _active = {"prefix": prefix, "quiet": quiet, "jobs": {}}


def deactivate() -> None:
    global _active
    if _active is not None:
        for job in _active["jobs"].values():
            job.close()
    _active = None


def report(what: str, i: int, total: int, unit: str = "step") -> None:
    """Step ``i`` (1-based) of ``total`` of ``what`` is done; a new pass starts when ``i`` is 1."""
    if _active is None:
        return
    jobs = _active["jobs"]
    job = jobs.get(what)
    if job is None or i <= job.n:
        if job is not None:
            job.close()
        passes = _active.setdefault("passes", {})
        passes[what] = passes.get(what, 0) + 1
        label = f"{_active['prefix']}: {what}" + (f" (pass {passes[what]})" if passes[what] > 1 else "")
        job = jobs[what] = Progress(label, total, unit, quiet=_active["quiet"], leave=False)
    job.set(i, total)
