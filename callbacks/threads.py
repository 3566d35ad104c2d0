"""Set torch's intra-op thread count for a run (CPU presets on shared machines).

Why: on a 2-core machine shared with other jobs, two OpenMP threads per process spin-wait for each
other whenever a core is taken, and small operations (data augmentation, small convolutions) become
tens of times slower (figures: docs/experiments/uti2contour.md). One intra-op thread in the training
process plus one DataLoader worker keeps both cores busy without that contention. Example (YAML)::

    trainer:
      callbacks:
        - class_path: callbacks.threads.TorchThreads
          init_args: {num_threads: 1}
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["TorchThreads"]


class TorchThreads(Callback):
    """``torch.set_num_threads(num_threads)`` for the run (0 = leave torch's default), the previous count back
    when it ends: a run inside a longer process (the contour tracker ``articulate train wav2uti`` trains first,
    a reproduction's rows) must not leave the next one on one thread."""

    def __init__(self, num_threads: int = 1):
        super().__init__()
        self.num_threads = int(num_threads)
        self._previous: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.num_threads > 0:
            if self._previous is None:
                self._previous = torch.get_num_threads()
            torch.set_num_threads(self.num_threads)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._previous is not None:
            torch.set_num_threads(self._previous)
            self._previous = None
