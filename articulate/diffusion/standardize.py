"""Standardised video for EDM: each pixel's training mean removed, the rest scaled to ``sigma_data``.

EDM's preconditioning (``c_in``, ``c_skip``, ``c_out``) assumes data of mean 0 and standard deviation
``sigma_data``. Ultrasound video in [-1, 1] is far from that: most of a fan image is dark (pixel mean about
-0.7) and what varies from frame to frame (the tongue, the speckle) has a spread of about a tenth of the
range. Unstandardised, the denoiser spends its capacity reproducing the static picture at every noise level
(at high noise its output must be the mean frame, several sigma_data away from 0), and the noise levels the
loss samples are mis-scaled against what actually varies. Standardised, the diffusion models the deviation
from the mean frame at the scale EDM's settings were chosen for (``sigma_data`` 0.25, the paper's).

:class:`FrameStandardizer` keeps the training mean frame and the scale as buffers (saved with the weights);
it is fitted once, on the training frames, when a fit starts. :class:`SpeechPriorStandardizer` removes a
prediction from the speech instead of the mean frame (both take ``feats``/``margin``; the mean frame ignores them).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FrameStandardizer", "SpeechPriorStandardizer"]


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

    needs_features = False

    def forward(self, video: torch.Tensor, feats: torch.Tensor | None = None, margin: int = 0) -> torch.Tensor:
        return (video - self.mean_frame.to(video.dtype)) * self.scale.to(video.dtype)

    def inverse(self, video: torch.Tensor, feats: torch.Tensor | None = None, margin: int = 0) -> torch.Tensor:
        return video / self.scale.to(video.dtype) + self.mean_frame.to(video.dtype)


class SpeechPriorStandardizer(nn.Module):
    """``forward(video, feats, margin) = (video - prior(feats)) * scale``: the diffusion models what a linear map of
    the speech does not predict (a named variant, not the paper's).

    ``prior`` is ridge regression from the model's own frame-aligned speech features (each frame with ``context``
    neighbours on each side) to the frame's pixels, solved in closed form on the training clips when a fit starts
    (z-scored features, unpenalised intercept, penalty ``alpha`` per training frame: as
    :class:`articulate.baselines.wav2uti.RidgeProbe`). The denoiser then starts from the speech's linear prediction
    at high noise, where an unconditional-looking mean frame (what the EDM's denoiser returns before it has learnt
    to read its condition) says nothing about the tongue, and spends its capacity on the residual. It is the
    regression-then-diffusion split of residual diffusion models (e.g. CorrDiff), with a closed-form regression.
    ``scale`` brings the residual's spread to ``sigma_data``. All of it is buffers, saved with the weights;
    ``weight`` takes its shape (features x pixels) from the fit or the checkpoint.

    Args:
        resolution: frame size (H = W).
        sigma_data: the standard deviation the standardised residual gets (the denoiser's ``sigma_data``).
        context: feature frames on each side of a frame in its window (read from the clip's speech margin).
        alpha: ridge penalty per training frame, on z-scored features.
    """

    component = True
    needs_features = True

    def __init__(self, resolution: int = 64, sigma_data: float = 0.25, context: int = 5, alpha: float = 1.0):
        super().__init__()
        if int(resolution) < 1 or not float(sigma_data) > 0 or int(context) < 0 or not float(alpha) > 0:
            raise ValueError(f"resolution >= 1, sigma_data > 0, context >= 0 and alpha > 0 needed, got {resolution}, "
                             f"{sigma_data}, {context}, {alpha}")
        self.resolution, self.sigma_data = int(resolution), float(sigma_data)
        self.context, self.alpha = int(context), float(alpha)
        self.register_buffer("weight", torch.zeros(0, self.resolution**2))
        self.register_buffer("bias", torch.zeros(self.resolution**2))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "weight")
        if saved is not None and saved.shape != self.weight.shape:  # the feature size is known once fitted
            self.weight = torch.zeros_like(saved, device=self.weight.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def windows(self, feats: torch.Tensor, margin: int) -> torch.Tensor:
        """``[B, T + 2 margin, D] -> [B, T, (2 context + 1) D]``: each frame's window (edges replicated)."""
        from articulate.networks.wav2uti.dnn import context_windows

        t = feats.shape[1] - 2 * int(margin)
        return context_windows(feats.float(), self.context)[:, int(margin):int(margin) + t]

    @torch.no_grad()
    def fit(self, pairs, margin: int) -> None:
        """Fit on ``(feats [B, T + 2 margin, D], video [B, 1, T, H, W])`` training pairs (data scale), streamed:
        float64 sums on the CPU, so every DDP rank agrees."""
        from articulate.baselines.wav2uti import accumulate_sums, centred_sums, ridge_solution

        s: dict[str, torch.Tensor] | None = None
        for feats, video in pairs:
            x = self.windows(feats, margin)
            x = x.reshape(-1, x.shape[-1]).double().cpu()
            y = video[:, 0].reshape(x.shape[0], -1).double().cpu()
            if y.shape[1] != self.resolution**2:
                raise ValueError(f"frames of {tuple(video.shape[-2:])} for a {self.resolution}-px standardiser")
            s = accumulate_sums(s, x, y, with_yy=True)
        if s is None or float(s["n"]) < 2:
            raise ValueError("SpeechPriorStandardizer.fit: no training frames")
        n, mx, my, sd, xtx, xty = centred_sums(s)
        w = ridge_solution(xtx, xty, self.alpha * n)
        # residual sum of squares of the fit, from the sums: ||Yc||^2 - 2 tr(W'X'Yc) + tr(W'X'X W)
        yy = (s["syy"] - n * my * my).sum()
        rss = (yy - 2 * (w * xty).sum() + (w * (xtx @ w)).sum()).clamp_min(1e-12)
        self.weight = (w / sd[:, None]).float().to(self.bias.device)
        self.bias.copy_((my - (mx / sd) @ w).float())
        self.scale.fill_(self.sigma_data / float((rss / (n * self.resolution**2)).sqrt()))
        self.fitted.fill_(True)

    def prior(self, feats: torch.Tensor, margin: int) -> torch.Tensor:
        """The speech's linear prediction ``[B, 1, T, H, W]`` (data scale) for features ``[B, T + 2 margin, D]``."""
        if not bool(self.fitted):
            raise RuntimeError("SpeechPriorStandardizer is not fitted (a fit fits it when it starts)")
        x = self.windows(feats, margin)
        b, t = x.shape[:2]
        y = x.reshape(b * t, -1) @ self.weight.to(x) + self.bias.to(x)
        return y.reshape(b, 1, t, self.resolution, self.resolution)

    def forward(self, video: torch.Tensor, feats: torch.Tensor | None = None, margin: int = 0) -> torch.Tensor:
        if feats is None:
            raise ValueError("SpeechPriorStandardizer needs the speech features (feats=)")
        return (video - self.prior(feats, margin).to(video.dtype)) * self.scale.to(video.dtype)

    def inverse(self, video: torch.Tensor, feats: torch.Tensor | None = None, margin: int = 0) -> torch.Tensor:
        if feats is None:
            raise ValueError("SpeechPriorStandardizer needs the speech features (feats=)")
        return video / self.scale.to(video.dtype) + self.prior(feats, margin).to(video.dtype)
