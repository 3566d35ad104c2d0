"""Exact resume: every training batch draws its random numbers from a stream keyed by (seed, epoch, batch).

Lightning restores weights, optimizers, schedulers and loops, and (through ``datamodules.sampling``) the
data position, but not the random number generators. Saving their states in the checkpoint and putting
them back at the first batch after the resume is exact only when nothing draws from them between the
checkpoint and the next batch. At an epoch boundary something does: the next epoch's DataLoader iterator
takes its worker seeds from the global torch RNG, after an end-of-epoch checkpoint in the uninterrupted
run but before the restore in the resumed one (and a validation after a ``on_train_batch_end`` checkpoint
would draw too). So instead of carrying states, this callback reseeds the torch (CPU and CUDA), numpy and
Python generators at the start of every training batch from ``(seed, epoch, batch_idx)``: what happens
between batches (validation, sanity checks, loaders, a restore) cannot shift the stream, and the
checkpoint only carries ``seed``. The data pipelines draw their own randomness from ``(seed, epoch,
index)`` (``datamodules.sampling.item_rng``), so DataLoader workers need no state of theirs.

``articulate fit`` adds it to every run (``ArticulateCLI``).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback


def seed_batch(seed: int, epoch: int, batch_idx: int) -> None:
    """Seed torch (every device), numpy's and Python's global generators for one training batch."""
    words = np.random.SeedSequence([int(seed), int(epoch), int(batch_idx)]).generate_state(4, np.uint64)
    # not torch.manual_seed (nor cuda.is_available): they probe every backend, 0.5 ms a batch
    torch.default_generator.manual_seed(int(words[0]))
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(int(words[0]))
    np.random.seed(words[1:3].view(np.uint32))
    random.seed(int(words[3]))


class ResumeState(Callback):
    """Keys each training batch's random numbers to ``(seed, epoch, batch_idx)``; ``seed`` is in the checkpoint.

    ``seed`` is ``torch.initial_seed()`` when a fit starts (the run's ``seed_everything``), or the one the
    resumed checkpoint carries, so a resumed fit continues the stream of the fit it resumes.
    """

    def __init__(self) -> None:
        self.seed: int | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # before the checkpoint's callback states are restored (which then replace it on a resume)
        self.seed = int(torch.initial_seed())

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("seed") is not None:  # checkpoints of earlier versions carried RNG states instead
            self.seed = int(state_dict["seed"])

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning 2.6 bounded by max_steps, resumed from a checkpoint written in on_train_epoch_end: it replays
        # that epoch's end and counts the epoch as processed a second time (it already was when the checkpoint
        # was written), so every later epoch would set its sampler to the next epoch's order and max_epochs
        # would stop one epoch early. Undo the count the replay will add again.
        fit = trainer.fit_loop
        progress = fit.epoch_progress
        if fit.restarted_on_epoch_end and progress.current.processed == progress.current.completed + 1:
            progress.current.processed -= 1
            progress.total.processed -= 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        seed_batch(self.seed if self.seed is not None else torch.initial_seed(), trainer.current_epoch, batch_idx)
