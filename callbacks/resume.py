"""Exact resume: every checkpoint carries the random number generators' states.

Lightning restores weights, optimizers, schedulers, loops and (through ``datamodules.sampling``)
the data position, but not the RNGs: a resumed fit then draws other noise levels, dropout masks
and condition drops than the uninterrupted one. This callback stores the torch (CPU and CUDA),
numpy and Python states with each checkpoint (as tensors and plain lists, so ``weights_only`` loads
them) and puts them back right before the first training batch after the resume: later than
the checkpoint hook, because setting up the run (data loaders, the sanity check) draws random
numbers that the uninterrupted run drew before the checkpoint was taken. The data pipelines draw
their own randomness from ``(seed, epoch, index)``, so DataLoader workers need no state of theirs.

``articulate fit`` adds it to every run (``ArticulateCLI``).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeState(Callback):
    """RNG states in the checkpoint; restored at the first training batch of a resumed fit."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": capture_rng()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending is not None:
            restore_rng(self._pending)
            self._pending = None
