"""EMA of the weights: Lightning's ``WeightAveraging`` callback with the EDM half-life schedule.

Lightning's callback does the bookkeeping we need (an ``AveragedModel`` updated after every optimizer
step, swapped in for validation, its weights written as the checkpoint's ``state_dict`` with the raw
ones kept for resuming, copied into the model when training ends). Its ``EMAWeightAveraging`` has a
fixed decay, which suits either a 1,000-step CPU preset or a 5-million-step paper run, not both.
NVlabs/edm instead sets the decay from a half-life that ramps up with training: the half-life is
``min(halflife_steps, rampup_ratio * step)`` optimizer steps, so early weights fade from the average
as fast in a short run as in a long one. One config then serves every preset.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


def edm_decay(step: float, halflife_steps: float, rampup_ratio: float | None) -> float:
    """The EMA decay after ``step`` updates (EDM's ``beta = 0.5 ** (1 / halflife)``)."""
    halflife = halflife_steps if not rampup_ratio else min(halflife_steps, rampup_ratio * step)
    return 0.5 ** (1.0 / max(halflife, 1e-8))


class EDMEMA(WeightAveraging):
    """EMA with ``decay = 0.5 ** (1 / min(halflife_steps, rampup_ratio * step))`` (NVlabs/edm).

    Args:
        halflife_steps: the half-life of the average in optimizer steps once the ramp-up is over.
        rampup_ratio: the half-life never exceeds this fraction of the steps so far (None: no ramp-up).
        device, use_buffers: as Lightning's ``WeightAveraging``.
    """

    def __init__(self, halflife_steps: float = 20000.0, rampup_ratio: float | None = 0.05,
                 device: str | None = None, use_buffers: bool = True):
        self.halflife_steps, self.rampup_ratio = float(halflife_steps), rampup_ratio

        def avg_fn(averaged: torch.Tensor, current: torch.Tensor, num_averaged: Any) -> torch.Tensor:
            beta = edm_decay(float(num_averaged), self.halflife_steps, self.rampup_ratio)
            return averaged * beta + current * (1.0 - beta)

        super().__init__(device=device, use_buffers=use_buffers, avg_fn=avg_fn)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """A fresh fit's average starts as the model's values after the module's own setup (Lightning copies the
        model earlier, before data-dependent initialisation such as a standardiser's mean frame): validation
        before the first update (the sanity check) then sees the same model. A resumed fit keeps its average."""
        avg = self._average_model
        if avg is not None and int(avg.n_averaged) == 0:
            for mine, theirs in zip(list(avg.module.parameters()) + list(avg.module.buffers()),
                                    list(pl_module.parameters()) + list(pl_module.buffers())):
                if mine.shape == theirs.shape:
                    mine.data.copy_(theirs.data)
                else:  # a buffer whose shape the setup set (a fitted speech prior's weight)
                    mine.data = theirs.data.detach().clone().to(mine.device)

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Resuming a fit restores the raw weights (``current_model_state``) and the average, as Lightning does.
        Any other load (``trainer.test/validate/predict(ckpt_path=...)``, e.g. the test after fit) keeps the
        checkpoint's ``state_dict``, the average: Lightning's callback would reload the raw weights there too
        whenever its average exists, i.e. in the same Trainer after a fit, and the test would score them."""
        if trainer.state.fn != TrainerFn.FITTING:
            return
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
