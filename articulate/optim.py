"""Learning-rate schedules built from torch's own, for the ``lr_scheduler`` callables of the configs.

Every LightningModule takes its optimizers and its scheduler as LightningCLI callables (``OptimizerCallable``,
``LRSchedulerCallable``) chosen in YAML; any ``torch.optim.lr_scheduler`` class works there. Schedulers step
once per optimizer step. What torch has no single class for lives here, composed of torch's classes.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, SequentialLR

__all__ = ["WarmupCosineLR"]


class WarmupCosineLR(SequentialLR):
    """Linear warm-up over ``warmup_steps`` (the rate at step k is ``(k + 1) / warmup_steps`` of the configured
    one), then half a cosine from it to 0 at ``total_steps`` (torch's ``LinearLR`` then ``CosineAnnealingLR``).

    ``total_steps`` is the fit's length: the direction records link it from ``trainer.max_steps`` (one source).
    A fit no longer than its warm-up (or of unknown length, ``max_steps`` -1) keeps the rate after the warm-up.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int):
        warmup_steps, total_steps = max(1, int(warmup_steps)), int(total_steps)
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps - 1)
        if total_steps > warmup_steps:
            after = CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps)
        else:
            after = ConstantLR(optimizer, factor=1.0, total_iters=0)
        super().__init__(optimizer, [warmup, after], milestones=[warmup_steps])
