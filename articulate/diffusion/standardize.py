"""Standardised video for EDM: each pixel's training mean removed, the rest scaled to ``sigma_data``.

EDM's preconditioning (``c_in``, ``c_skip``, ``c_out``) assumes data of mean 0 and standard deviation
``sigma_data``. Ultrasound video in [-1, 1] is far from that: most of a fan image is dark (pixel mean about
-0.7) and what varies from frame to frame (the tongue, the speckle) has a spread of about a tenth of the
range. Unstandardised, the denoiser spends its capacity reproducing the static picture at every noise level
(at high noise its output must be the mean frame, several sigma_data away from 0), and the noise levels the
loss samples are mis-scaled against what actually varies. Standardised, the diffusion models the deviation
from the mean frame at the scale EDM's settings were chosen for (``sigma_data`` 0.25, the paper's).

:class:`FrameStandardizer` keeps the training mean frame and the scale as buffers (saved with the weights);
it is fitted once, on the training frames, when a fit starts.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FrameStandardizer"]


class FrameStandardizer(nn.Module):
    """``forward(video [B, C, T, H, W]) = (video - mean_frame) * scale``; :meth:`inverse` undoes it.

    Args:
        resolution: frame size (H = W) of the videos it standardises.
        sigma_data: the standard deviation the standardised frames get (the denoiser's ``sigma_data``).
    """

    component = True

    def __init__(self, resolution: int = 64, sigma_data: float = 0.25):
        super().__init__()
        if int(resolution) < 1 or not float(sigma_data) > 0:
            raise ValueError(f"resolution must be >= 1 and sigma_data > 0, got {resolution}, {sigma_data}")
        self.resolution, self.sigma_data = int(resolution), float(sigma_data)
        self.register_buffer("mean_frame", torch.zeros(self.resolution, self.resolution))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, frames: torch.Tensor) -> None:
        """Fit on training frames ``[N, H, W]`` (data scale); float64 on the CPU, so every DDP rank agrees."""
        x = frames.double().cpu()
        if x.shape[-2:] != self.mean_frame.shape:
            raise ValueError(f"frames of {tuple(x.shape[-2:])} for a {self.resolution}-px standardiser")
        mean = x.mean(0)
        spread = (x - mean).pow(2).mean().sqrt().clamp_min(1e-6)
        self.mean_frame.copy_(mean)
        self.scale.fill_(self.sigma_data / float(spread))
        self.fitted.fill_(True)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return (video - self.mean_frame.to(video.dtype)) * self.scale.to(video.dtype)

    def inverse(self, video: torch.Tensor) -> torch.Tensor:
        return video / self.scale.to(video.dtype) + self.mean_frame.to(video.dtype)
