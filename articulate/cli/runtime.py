"""Process settings every ``articulate`` command starts with (called first thing by :mod:`articulate.cli.main`).

Measured on the QUICK mri2audio training (2 shared CPU cores, see README "Speed"), two process-wide
defaults cost more than half the CPU time:

* **The allocator returned every large tensor to the kernel.** glibc serves allocations above its mmap
  threshold (32 MiB at most) with ``mmap`` and unmaps them on ``free``; a training step allocates and
  frees GBs of activations, so every step page-faulted them in again (~770,000 faults per QUICK
  batch: 28-35% of the CPU time was system time, the kernel zeroing pages). ``tune_allocator`` turns
  mmap off (``M_MMAP_MAX = 0``) and heap trimming off (``M_TRIM_THRESHOLD`` = max), so freed memory is
  reused by the next step: system time falls to ~1%. The process keeps its high-water mark as RSS
  (the peak is unchanged; memory is not handed back between steps).
* **OpenMP threads spun while waiting.** libgomp's default busy-waits ~300,000 spins after every
  parallel region; on a machine where other processes hold the cores, the spinning thread takes CPU
  from the one doing the work (user time doubled). ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep.

Both are defaults only: a variable already set in the environment wins (``OMP_WAIT_POLICY``,
``ARTICULATE_MALLOC=default`` keeps glibc's allocator behaviour). They must be applied before torch
is imported (libgomp reads its variables once), which is why ``main`` calls :func:`configure` first.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

ENV_DEFAULTS = {
    "OMP_WAIT_POLICY": "PASSIVE",
}

_applied: dict[str, object] | None = None


def tune_allocator() -> bool:
    """glibc only: keep freed memory for reuse instead of unmapping/trimming it (see the module docstring).
    Returns whether the settings were applied."""
    if os.environ.get("ARTICULATE_MALLOC", "").strip().lower() in ("default", "off", "0", "no"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (musl has no mallopt semantics to tune)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt's value is an int; glibc stores the trim threshold as size_t, so -1 is "never trim".
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))


def state() -> dict[str, object] | None:
    """What :func:`configure` applied in this process (None: it was not called, e.g. under pytest)."""
    return _applied


def configure() -> dict[str, object]:
    """Apply the defaults once per process; returns what was set (for the bench's environment record)."""
    global _applied
    if _applied is not None:
        return _applied
    env = {}
    for key, value in ENV_DEFAULTS.items():
        if key not in os.environ:
            os.environ[key] = value
            env[key] = value
    _applied = {"env": env, "malloc_tuned": tune_allocator(),
                "torch_imported_before": "torch" in sys.modules}
    return _applied
