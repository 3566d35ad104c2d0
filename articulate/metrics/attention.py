"""Does an attention map look where things move? Mean mask inside a true motion region over outside it."""

from __future__ import annotations

from typing import Any

import torch

from articulate.metrics.dedup import SampleMetric


class AttentionMotionRatio(SampleMetric):
    """``mean(a | region) / mean(a | outside)`` over every frame of every sample.

    ``update(attention, region, sample_index=None, valid=None)`` with masks ``a`` and region weights in
    [0, 1], both ``[B, ..., H, W]`` (e.g. ``[B, T, H, W]``; a region given as the fraction of each pixel
    covered weighs that pixel by it). The means are pooled over the whole set (sums of ``a * r``,
    ``r``, ``a * (1 - r)`` and ``1 - r``, de-duplicated per sample), so small regions count by area.
    1 = the mask ignores the region; a constant mask gives exactly 1.
    """

    registered_name = "attention_motion_ratio"
    default_inputs = ("attention", "motion_region")
    higher_is_better = True
    width = 4

    def update(self, attention: torch.Tensor, region: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        a = attention.detach().double()
        r = region.detach().double().to(a.device)
        if a.shape != r.shape:
            if a.numel() != r.numel():
                raise ValueError(f"attention {tuple(a.shape)} and region {tuple(r.shape)} differ")
            r = r.reshape(a.shape)
        a, r = a.reshape(a.shape[0], -1), r.reshape(a.shape[0], -1)
        rows = torch.stack([(a * r).sum(1), r.sum(1), (a * (1 - r)).sum(1), (1 - r).sum(1)], dim=1)
        self._add(rows, sample_index, valid)

    def compute(self) -> torch.Tensor:
        s = self._rows().sum(0)
        if s.numel() < 4 or s[1] <= 0 or s[3] <= 0 or s[2] <= 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        return (s[0] / s[1]) / (s[2] / s[3])

    @staticmethod
    def inside_outside(attention: torch.Tensor, region: torch.Tensor) -> dict[str, Any]:
        """The two means of one batch (for logs and tests)."""
        a, r = attention.double(), region.double().reshape(attention.shape)
        return {"inside": float((a * r).sum() / r.sum()), "outside": float((a * (1 - r)).sum() / (1 - r).sum())}


class AttentionMotionModulation(AttentionMotionRatio):
    """How much more A's mask changes over time inside the motion region than outside it.

    The ratio of the masks' temporal standard deviation, ``mean(sd_t(a) | region) / mean(sd_t(a) | outside)``,
    per pixel over each sample's frames (axis 1 of ``[B, T, H, W]``), each pixel weighed by the fraction of the
    frames the region covers it, pooled like :class:`AttentionMotionRatio`. The attention ratio asks whether the
    mask is *brighter* where things move; this one whether it *responds* there. A reads frame differences, so even
    an untrained A, whose masks hardly vary, scores above 1 (docs/experiments/mri2audio.md); a mask constant in
    time is undefined (NaN).
    """

    registered_name = "attention_motion_modulation"

    def update(self, attention: torch.Tensor, region: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        a = attention.detach().double()
        r = region.detach().double().to(a.device)
        if a.dim() < 3 or a.numel() != r.numel():
            raise ValueError(f"attention {tuple(a.shape)} must be [B, T, ...] with a region of as many values, "
                             f"got region {tuple(r.shape)}")
        r = r.reshape(a.shape)
        super().update(a.std(dim=1, unbiased=False), r.mean(dim=1), sample_index=sample_index, valid=valid)
