"""How much memory a piece of work takes: the peak resident set size of this process (CPU, Linux) or the
peak CUDA allocation, measured around a call, and the process's own high-water mark.

Used to size chunks of work by a memory budget (long-form sampling batches as many windows per network
call as fit the budget) and to report what a command used (``synthesize-uti --json``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["allocated_mb", "peak_rss_mb", "measure_peak_mb", "status_kb"]


def status_kb(key: str) -> float | None:
    """A ``/proc/self/status`` figure in kB (``VmRSS``, ``VmHWM``); None where the system has none."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+)\s+kB", text, re.M)
    return float(m.group(1)) if m else None


def peak_rss_mb() -> float | None:
    """This process's peak resident set size so far (MB); None where the system does not say (non-Linux)."""
    kb = status_kb("VmHWM")
    return None if kb is None else kb / 1024.0


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def allocated_mb(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), MB of all the new tensors its operations created)``: an upper bound of the extra memory at the
    peak of the call (intermediates freed during the call count too). Unlike a resident-set reading it does
    not depend on what the allocator happened to keep from earlier work."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    total = [0]

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and not t._is_view():
                    total[0] += t.untyped_storage().nbytes()
            return out

    with Count():
        out = fn()
    return out, total[0] / 2**20


def measure_peak_mb(fn: Callable[[], Any], device: torch.device | str) -> tuple[Any, float | None]:
    """``(fn(), extra MB at the peak of the call)``: the CUDA peak allocation above what was allocated before,
    or on the CPU the peak RSS above the RSS before (None when neither can be measured). On the CPU memory
    the allocator had already reserved is not counted, so a first call measures more honestly than later ones."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    rss = status_kb("VmRSS")
    if rss is None or not _reset_rss_peak():
        return fn(), None
    out = fn()
    peak = status_kb("VmHWM")
    return out, None if peak is None else max(0.0, (peak - rss) / 1024.0)
