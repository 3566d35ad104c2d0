"""LPIPS (Zhang et al. 2018, the ``lpips`` package) per frame, averaged; SqueezeNet trunk by default.

The wav2uti paper reports LPIPS with SqueezeNet (its public code does too); ``net="alex"`` and
``net="vgg"`` are selectable. Gray frames are repeated to 3 channels and mapped to [-1, 1], the
input scale lpips expects. Trunk weights come from a local file (see
:mod:`articulate.metrics.backbones`); ``random_init=True`` is for tests and is labelled
NOT COMPARABLE in ``label``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from articulate.metrics.backbones import lpips_network
from articulate.metrics.dedup import SampleMetric, per_image_layout
from articulate.metrics.functional import PIXEL_RANGES, PixelRange

# Smallest frame side each trunk accepts (its pooling stack reduces smaller frames to nothing).
MIN_SIDE = {"squeeze": 18, "alex": 32, "vgg": 16}


def frames_to_lpips_input(x: torch.Tensor, pixel_range: PixelRange) -> torch.Tensor:
    """``[B, ..., H, W]`` (gray) -> ``[N, 3, H, W]`` in [-1, 1]."""
    x = x.reshape(-1, 1, x.shape[-2], x.shape[-1]).float()
    if pixel_range == "unit":
        x = 2.0 * x - 1.0
    elif pixel_range == "byte":
        x = x / 127.5 - 1.0
    elif pixel_range != "signed":
        raise ValueError(f"pixel_range must be one of {PIXEL_RANGES}, got {pixel_range!r}")
    return x.clamp(-1.0, 1.0).repeat(1, 3, 1, 1)


class LPIPS(SampleMetric):
    """Mean LPIPS distance over frames (lower is better).

    ``update(pred, target, sample_index=None, valid=None)``: ``[B, ..., H, W]`` gray images or
    videos (each trailing 2D image is one frame) in ``pixel_range``. Frames go through the network
    in chunks of ``batch_size``.
    """
    registered_name = "lpips"
    default_inputs = ('video_pred', 'video_target')

    higher_is_better = False

    def __init__(self, net: Literal["squeeze", "alex", "vgg"] = "squeeze", pixel_range: PixelRange = "unit",
                 weights_path: str | None = None, random_init: bool = False, batch_size: int = 64, **kwargs: Any):
        if pixel_range not in PIXEL_RANGES:
            raise ValueError(f"pixel_range must be one of {PIXEL_RANGES}, got {pixel_range!r}")
        super().__init__(**kwargs)
        self.net = lpips_network(net, weights_path=weights_path, random_init=random_init)
        self.net_name = net
        self.pixel_range = pixel_range
        self.batch_size = int(batch_size)
        self.comparable: bool = self.net.comparable
        self.label: str = self.net.label

    @torch.no_grad()
    def distances(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS of each frame pair ``[N]`` (no state change)."""
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if min(pred.shape[-2:]) < MIN_SIDE[self.net_name]:
            raise ValueError(f"LPIPS-{self.net_name} needs frames of at least {MIN_SIDE[self.net_name]} px per side, "
                             f"got {tuple(pred.shape[-2:])}")
        p = frames_to_lpips_input(pred, self.pixel_range)
        t = frames_to_lpips_input(target, self.pixel_range)
        dev = next(self.net.parameters()).device
        out = [self.net(p[i:i + self.batch_size].to(dev), t[i:i + self.batch_size].to(dev)).reshape(-1)
               for i in range(0, p.shape[0], self.batch_size)]
        return torch.cat(out)

    def update(self, pred: torch.Tensor, target: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        _, per = per_image_layout(pred)
        self._add(self.distances(pred, target)[:, None], sample_index, valid, parts_per_sample=per)

    def compute(self) -> torch.Tensor:
        rows = self._rows()
        if rows.shape[0] == 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        return rows[:, 0].mean()


__all__ = ["LPIPS", "frames_to_lpips_input"]
