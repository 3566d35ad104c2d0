"""PESQ (ITU-T P.862 via the ``pesq`` package) on 16 kHz audio, computed in parallel CPU workers.

The ``pesq`` C code accepts only 8 or 16 kHz, so every waveform is resampled to 16 kHz first
(:func:`articulate.signal.resample.resample`, band-limited Kaiser sinc). Wide band (P.862.2, ``'wb'``) is the
default; ``mode='nb'`` gives narrow band (P.862.1 MOS-LQO) on the same 16 kHz signals. Papers
differ in which they report: say which.

PESQ is CPU-bound (~0.1-0.5 s per second of audio), so a batch is scored in a pool of worker
processes (``concurrent.futures.ProcessPoolExecutor`` over a ``forkserver`` context: forking a
process that holds CUDA contexts or OpenMP threads is unsafe; the worker module imports only
numpy and pesq so workers start fast). Small batches (< ``min_parallel``) run serially.

Signals PESQ cannot score (silence -> ``NoUtterancesError``, < 0.25 s -> ``BufferTooShortError``)
do not stop training: they are excluded from the mean, counted in ``failed`` after ``compute`` and
reported once per compute in a warning naming the error and the sample indices.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

import numpy as np
import torch

from articulate.metrics._pesq_worker import pesq_one
from articulate.metrics.dedup import SampleMetric

PESQ_SR = 16000
_POOLS: dict[int, ProcessPoolExecutor] = {}


def _default_workers() -> int:
    # Under DDP every rank has its own pool: share the node's cores among the local ranks.
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, (os.cpu_count() or 1) // max(1, local))


def _pool(workers: int) -> ProcessPoolExecutor:
    pool = _POOLS.get(workers)
    if pool is None:
        ctx = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        _POOLS[workers] = pool
    return pool


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


def _to_16k(wav: Any, sample_rate: int) -> np.ndarray:
    x = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform [L], got shape {tuple(x.shape)}")
    if sample_rate != PESQ_SR:
        from articulate.signal.resample import resample  # the project's one band-limited resampler

        x = resample(x, int(sample_rate), PESQ_SR)
    return np.ascontiguousarray(x, dtype=np.float32)


def _as_list(batch: Any) -> list[Any]:
    if isinstance(batch, torch.Tensor) or isinstance(batch, np.ndarray):
        if batch.ndim == 1:
            return [batch]
        if batch.ndim == 3 and batch.shape[1] == 1:  # [B, 1, L]
            batch = batch[:, 0]
        if batch.ndim != 2:
            raise ValueError(f"expected audio [B, L] (or [L], [B, 1, L]), got shape {tuple(batch.shape)}")
        return list(batch)
    return list(batch)


def pesq_batch(
    target: Any,
    pred: Any,
    sample_rate: int,
    mode: Literal["wb", "nb"] = "wb",
    num_workers: int | None = None,
    min_parallel: int = 4,
) -> tuple[list[float], list[str]]:
    """PESQ of each (reference, degraded) pair; returns ``(scores, errors)`` (NaN and a message on failure).

    ``target``/``pred``: ``[B, L]`` tensors/arrays or lists of 1-D waveforms (lengths may differ
    between pairs; within a pair both are cut to the shorter one). Any ``sample_rate``.
    """
    if mode not in ("wb", "nb"):
        raise ValueError(f"mode must be 'wb' or 'nb', got {mode!r}")
    refs, degs = _as_list(target), _as_list(pred)
    if len(refs) != len(degs):
        raise ValueError(f"{len(refs)} reference waveforms but {len(degs)} predicted ones")
    jobs: list[tuple[np.ndarray, np.ndarray, int, str] | None] = []
    results: list[tuple[float, str]] = [(math.nan, "")] * len(refs)
    for i, (r, d) in enumerate(zip(refs, degs)):
        r16, d16 = _to_16k(r, sample_rate), _to_16k(d, sample_rate)
        n = min(len(r16), len(d16))
        r16, d16 = r16[:n], d16[:n]
        if not np.isfinite(d16).all() or not np.isfinite(r16).all():
            results[i] = (math.nan, "non-finite samples in the waveform")
            jobs.append(None)
        elif not np.any(r16) or not np.any(d16):
            results[i] = (math.nan, "NoUtterancesError: the %s waveform is all zeros" % ("reference" if not np.any(r16) else "predicted"))
            jobs.append(None)
        else:
            jobs.append((r16, d16, PESQ_SR, mode))
    todo = [(i, j) for i, j in enumerate(jobs) if j is not None]
    workers = _default_workers() if num_workers is None else int(num_workers)
    workers = min(workers, len(todo))
    outs: list[tuple[float, str]] | None = None
    if workers > 1 and len(todo) >= min_parallel:
        try:
            outs = list(_pool(workers).map(pesq_one, [j for _, j in todo]))
        except (BrokenProcessPool, OSError, AssertionError) as err:
            # AssertionError: daemonic processes cannot have children (e.g. inside a DataLoader worker).
            _POOLS.pop(workers, None)
            warnings.warn(f"PESQ worker pool unavailable ({type(err).__name__}: {err}); scoring serially", stacklevel=2)
            outs = None
    if outs is None:
        outs = [pesq_one(j) for _, j in todo]
    for (i, _), out in zip(todo, outs):
        results[i] = out
    return [s for s, _ in results], [e for _, e in results]


class PESQ(SampleMetric):
    """Mean PESQ over waveforms (16 kHz, ``mode`` 'wb' default or 'nb'), DDP- and padding-safe.

    ``update(pred, target, sample_rate, sample_index=None, valid=None)`` with ``[B, L]`` audio
    (or lists of 1-D waveforms). After ``compute()``, ``failed`` is the number of waveforms PESQ
    could not score (excluded from the mean) and ``scored`` the number it did.
    """
    registered_name = "pesq"
    default_inputs = ('audio_pred', 'audio_target')
    extra_inputs = ("sample_rate",)  # passed by keyword from the outputs dict

    higher_is_better = True
    width = 2  # (score, failed)

    def __init__(self, mode: Literal["wb", "nb"] = "wb", num_workers: int | None = None, min_parallel: int = 4,
                 **kwargs: Any):
        if mode not in ("wb", "nb"):
            raise ValueError(f"mode must be 'wb' or 'nb', got {mode!r}")
        super().__init__(**kwargs)
        self.mode = mode
        self.num_workers = num_workers
        self.min_parallel = min_parallel
        self.failed = 0
        self.scored = 0
        self._errors: list[str] = []

    def update(self, pred: Any, target: Any, sample_rate: int, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        scores, errors = pesq_batch(target, pred, int(sample_rate), self.mode, self.num_workers, self.min_parallel)
        idx = None if sample_index is None else torch.as_tensor(sample_index).reshape(-1).tolist()
        for k, e in enumerate(errors):
            if e:
                self._errors.append(f"sample {idx[k] if idx is not None else '?'}: {e}")
        rows = torch.tensor([[s, 0.0 if math.isfinite(s) else 1.0] for s in scores], dtype=torch.float64)
        self._add(rows, sample_index, valid)

    def compute(self) -> torch.Tensor:
        rows = self._rows()
        ok = rows[:, 1] == 0
        self.failed = int((~ok).sum())
        self.scored = int(ok.sum())
        if self.failed and self._errors:
            shown = "; ".join(self._errors[:3]) + (f"; ... ({len(self._errors)} on this process)" if len(self._errors) > 3 else "")
            warnings.warn(f"PESQ: {self.failed} of {rows.shape[0]} waveforms could not be scored and are excluded "
                          f"from the mean ({shown})", stacklevel=2)
        if not bool(ok.any()):
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        return rows[ok, 0].mean()

    def reset(self) -> None:
        super().reset()
        self._errors = []


def pesq_scores(pred: Sequence[Any], target: Sequence[Any], sample_rate: int, mode: str = "wb") -> list[float]:
    """Convenience: per-pair PESQ scores (NaN where PESQ failed)."""
    return pesq_batch(target, pred, sample_rate, mode)[0]  # type: ignore[arg-type]


__all__ = ["PESQ", "pesq_batch", "pesq_scores", "PESQ_SR"]
