"""RMSE and PSNR on the 0-255 pixel scale, per 2D image (ultrasound frame), averaged.

The wav2uti paper reports both on 8-bit pixels (Table 1: RMSE 5.63, PSNR 33.15 dB). Each frame
is one value; a video ``[B, 1, T, H, W]`` contributes T values. ``pixel_range`` must say what the
inputs are (``"unit"`` [0, 1], ``"signed"`` [-1, 1], ``"byte"`` 0-255); see
:func:`articulate.metrics.functional.to_pixels`.
"""

from __future__ import annotations

from typing import Any

import torch

from articulate.metrics.dedup import SampleMetric, per_image_layout
from articulate.metrics.functional import PIXEL_RANGES, PixelRange, psnr, rmse


class _PixelMetric(SampleMetric):
    def __init__(self, pixel_range: PixelRange = "unit", clamp: bool = True, **kwargs: Any):
        if pixel_range not in PIXEL_RANGES:
            raise ValueError(f"pixel_range must be one of {PIXEL_RANGES}, got {pixel_range!r}")
        super().__init__(**kwargs)
        self.pixel_range = pixel_range
        self.clamp = clamp

    def _per_image(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, pred: torch.Tensor, target: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        b, per = per_image_layout(pred)
        v = self._per_image(pred.detach().double(), target.detach().double())
        self._add(v[:, None], sample_index, valid, parts_per_sample=per)

    def compute(self) -> torch.Tensor:
        rows = self._rows()
        if rows.shape[0] == 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        return rows[:, 0].mean()


class RMSE(_PixelMetric):
    """Mean over frames of the per-frame RMSE in 0-255 pixel units."""
    registered_name = "rmse"
    default_inputs = ('video_pred', 'video_target')

    higher_is_better = False

    def _per_image(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return rmse(pred, target, pixel_range=self.pixel_range, clamp=self.clamp)


class PSNR(_PixelMetric):
    """Mean over frames of the per-frame PSNR (dB, peak 255); identical frames make it +inf."""
    registered_name = "psnr"
    default_inputs = ('video_pred', 'video_target')

    higher_is_better = True

    def _per_image(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return psnr(pred, target, pixel_range=self.pixel_range, clamp=self.clamp)


__all__ = ["RMSE", "PSNR"]
