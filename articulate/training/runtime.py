"""Process settings every ``articulate`` command starts with (called first thing by :mod:`articulate.cli.main`).

Measured on the QUICK mri2audio training (2 shared CPU cores; docs/results/speed-memory.md), two
process-wide defaults cost more than half the CPU time:

* **The allocator returned every large tensor to the kernel.** glibc serves large allocations with
  ``mmap`` and unmaps them on ``free``, so every training step page-faulted its activations in again
  (~750,000 faults per QUICK batch: 25-35% of the CPU time was system time, the kernel zeroing pages).
* **OpenMP threads spun while waiting.** libgomp busy-waits ~300,000 spins after every parallel region;
  on a machine where other processes hold the cores, the spinning thread takes CPU from the one doing the
  work (user time doubled). ``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep.

CPU allocator modes (glibc's ``mallopt``; elsewhere nothing changes):

* ``reuse`` (the default): no ``mmap``, no heap trimming: freed memory is reused by the next step, no
  page faults (system time ~1%). The heap keeps its high-water mark, and when long-lived and short-lived
  tensors interleave (gradient checkpointing, chunked recomputation) holes between them inflate it: the
  checkpointed 112-px U-Net peaks at ~1.8x its live memory (with the 2 MiB huge-page alignment below).
* ``compact``: every allocation of 64 KiB or more is its own mapping, returned on ``free``: the RSS
  follows the live tensors (what a paper-size config needs to fit), at the price of the page faults.
* ``default``: glibc as it comes (a threshold that adapts up to 32 MiB: faults and fragmentation both).

The mode is ``ARTICULATE_MALLOC`` when set, else the config's top-level ``cpu_allocator`` (applied by the
CLI before the model and data are built: :func:`set_allocator`), else ``reuse``. Environment variables
already set win over these defaults; they are applied before torch is imported (libgomp reads its
variables once), which is why ``main`` calls :func:`configure` first.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MODES = ("reuse", "compact", "default")

ENV_DEFAULTS = {
    "OMP_WAIT_POLICY": "PASSIVE",
    # torch's CPU allocator aligns tensors of 2 MiB or more to 2 MiB and asks for transparent huge pages:
    # 500x fewer page faults where memory is mapped fresh, and in the reuse mode the rounded sizes leave
    # fewer unusable holes (the checkpointed 112-px U-Net's peak: 8.5 -> 5.4 GB at batch 1)
    "THP_MEM_ALLOC_ENABLE": "1",
}

_applied: dict[str, object] | None = None
_mode: str | None = None


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl's malloc has no such knobs)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def env_mode() -> str | None:
    """The mode ``ARTICULATE_MALLOC`` asks for (None when unset; ``off``/``0`` mean ``default``)."""
    value = os.environ.get("ARTICULATE_MALLOC", "").strip().lower()
    if not value:
        return None
    return "default" if value in ("off", "0", "no", "none") else value


def set_allocator(mode: str) -> bool:
    """Switch the CPU allocator mode (see the module docstring); returns whether glibc accepted it.
    ``ARTICULATE_MALLOC`` in the environment wins over the ``mode`` asked for here."""
    global _mode
    forced = env_mode()
    mode = forced or mode
    if mode not in MODES:
        raise ValueError(f"CPU allocator mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == _mode:
        return True
    if mode == "default":  # glibc's adaptive threshold cannot be restored once mallopt has fixed it
        if _mode is None:
            _mode = "default"
        return _mode == "default"
    libc = _libc()
    if libc is None:
        return False
    if mode == "reuse":
        # mallopt's value is an int; glibc stores the trim threshold as size_t, so -1 means "never trim".
        ok = libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, -1)
    else:  # compact: a fixed 64 KiB threshold (no adaptive growth), trimming at glibc's default 128 KiB
        ok = (libc.mallopt(M_MMAP_MAX, 65536) and libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
              and libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024))
        libc.malloc_trim(0)  # hand back what the reuse mode kept so far
    if ok:
        _mode = mode
    return bool(ok)


def state() -> dict[str, object] | None:
    """What :func:`configure` applied in this process (None: it was not called, e.g. under pytest)."""
    if _applied is None:
        return None
    return {**_applied, "allocator": _mode}


def configure() -> dict[str, object]:
    """Apply the defaults once per process; returns what was set (for the bench's environment record)."""
    global _applied
    if _applied is not None:
        return state()
    env = {}
    for key, value in ENV_DEFAULTS.items():
        if key not in os.environ:
            os.environ[key] = value
            env[key] = value
    tuned = set_allocator("reuse")
    _applied = {"env": env, "malloc_tuned": tuned and _mode != "default", "torch_imported_before": "torch" in sys.modules}
    return state()
