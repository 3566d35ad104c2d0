"""Corr2D: MATLAB ``corr2`` per 2D image (spectrogram or frame), averaged over images."""

from __future__ import annotations

from typing import Any

import torch

from articulate.metrics.dedup import SampleMetric, per_image_layout
from articulate.metrics.functional import corr2d


class Corr2D(SampleMetric):
    """Mean 2D correlation coefficient, as the mri2audio paper's Table 1.

    ``update(pred, target, sample_index=None, valid=None)`` with ``[B, ..., H, W]`` tensors: every
    trailing 2D image is one coefficient (a mel ``[B, 1, F, T]`` gives B); ``compute()`` is their
    mean after de-duplication (:mod:`articulate.metrics.dedup`). ``undefined`` scores constant
    images (corr2 is 0/0 there; MATLAB gives NaN): 0 by default so that one collapsed prediction
    does not make the whole average NaN; pass ``float('nan')`` to propagate NaN as MATLAB would.
    """
    registered_name = "corr2d"
    default_inputs = ('mel_pred', 'mel_target')

    higher_is_better = True

    def __init__(self, undefined: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.undefined = float(undefined)

    def update(self, pred: torch.Tensor, target: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        b, per = per_image_layout(pred)
        r = corr2d(pred.detach().double(), target.detach().double(), undefined=self.undefined)
        self._add(r[:, None], sample_index, valid, parts_per_sample=per)

    def compute(self) -> torch.Tensor:
        rows = self._rows()
        if rows.shape[0] == 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        return rows[:, 0].mean()
