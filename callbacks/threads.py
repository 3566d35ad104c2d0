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
    """``torch.set_num_threads(num_threads)`` when the run starts (0 = leave torch's default)."""

    def __init__(self, num_threads: int = 1):
        super().__init__()
        self.num_threads = int(num_threads)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.num_threads > 0:
            torch.set_num_threads(self.num_threads)
