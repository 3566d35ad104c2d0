"""The DNN baseline of acoustic-to-ultrasound inversion (Porras, Csapo et al. 2019; wav2uti paper [8]).

Frame-wise acoustic features with a symmetric context window of ``context`` frames on each side
are flattened and mapped by a fully connected ReLU network (default 5 x 1000 as in the original)
to one ultrasound frame. Each output frame is predicted independently (no temporal model), which is
exactly the limitation the diffusion model addresses.

Output: raw pixels, or (``basis`` K) the frame's coordinates on the training frames' first K principal
components, the "EigenTongues" that Porras et al.'s five-hidden-layer network predicts: speckle that belongs
to one recording's tissue lies outside them, so the network cannot memorise it. The basis is fitted on the
training frames once (:meth:`FrameDNN.fit_basis`, by the LightningModule when a fit starts) and saved with
the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrameDNN", "context_windows"]


def context_windows(feats: torch.Tensor, context: int) -> torch.Tensor:
    """``[B, T, D] -> [B, T, (2*context+1)*D]``: each frame with its neighbours (edges replicated)."""
    if context == 0:
        return feats
    x = F.pad(feats.transpose(1, 2), (context, context), mode="replicate")  # [B, D, T + 2c]
    win = x.unfold(2, 2 * context + 1, 1)  # [B, D, T, 2c+1]
    return win.permute(0, 2, 3, 1).reshape(feats.shape[0], feats.shape[1], -1)


class FrameDNN(nn.Module):
    """Acoustic features with context -> fully connected -> one ``out_size`` frame per video frame.

    ``forward(feats [B, T + 2 margin, in_dim], margin=0) -> [B, 1, T, H, W]`` in the data scale ([-1, 1];
    linear output, trained with MSE): the ``margin`` frames on each side only feed the context windows.
    """

    def __init__(self, in_dim: int = 80, context: int = 5, hidden: int = 1000, num_layers: int = 5,
                 out_size: int = 64, dropout: float = 0.0, basis: int | None = None):
        super().__init__()
        self.in_dim, self.context, self.out_size = int(in_dim), int(context), int(out_size)
        pixels = self.out_size * self.out_size
        self.basis_size = int(basis) if basis else None
        if self.basis_size is not None:
            if not 0 < self.basis_size <= pixels:
                raise ValueError(f"basis must be in 1..{pixels} (pixels of a frame), got {basis}")
            # EigenTongues: mean frame, components [K, P] and their spread [K] (set by fit_basis, saved)
            self.register_buffer("basis_mean", torch.zeros(pixels))
            self.register_buffer("basis_components", torch.zeros(self.basis_size, pixels))
            self.register_buffer("basis_scale", torch.ones(self.basis_size))
            self.register_buffer("basis_fitted", torch.zeros((), dtype=torch.bool))
        layers: list[nn.Module] = [nn.LayerNorm(self.in_dim * (2 * self.context + 1))]
        width = self.in_dim * (2 * self.context + 1)
        for _ in range(int(num_layers)):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, self.basis_size or pixels))
        self.mlp = nn.Sequential(*layers)

    @torch.no_grad()
    def fit_basis(self, frames: torch.Tensor, max_frames: int = 20000) -> None:
        """Principal components of training frames ``[N, H, W]`` (data scale); at most ``max_frames`` of them,
        evenly spread, in float64 on the CPU (the same basis on every DDP rank)."""
        if self.basis_size is None:
            raise RuntimeError("this FrameDNN predicts pixels (basis=None): no basis to fit")
        x = frames.reshape(frames.shape[0], -1).double().cpu()
        if x.shape[0] > max_frames:
            x = x[torch.linspace(0, x.shape[0] - 1, max_frames).round().long()]
        mean = x.mean(0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        k = min(self.basis_size, vh.shape[0])
        comps = torch.zeros_like(self.basis_components, dtype=torch.float64)
        comps[:k] = vh[:k]
        scale = torch.ones(self.basis_size, dtype=torch.float64)
        scale[:k] = (s[:k] / x.shape[0] ** 0.5).clamp_min(1e-6)  # unit-variance coordinates for the network
        self.basis_mean.copy_(mean)
        self.basis_components.copy_(comps)
        self.basis_scale.copy_(scale)
        self.basis_fitted.fill_(True)
        last = self.mlp[-1]
        last.weight.mul_(0.1)  # start near the mean frame
        last.bias.zero_()

    def bytes_per_frame(self) -> int:
        """Activation memory of one frame in a forward pass (float32): what chunked inference budgets."""
        widths = [m.out_features for m in self.mlp if isinstance(m, nn.Linear)]
        return 4 * (2 * self.in_dim * (2 * self.context + 1) + 2 * sum(widths))

    def forward(self, feats: torch.Tensor, margin: int = 0) -> torch.Tensor:
        x = context_windows(feats.float(), self.context)
        x = x[:, margin:x.shape[1] - margin]
        b, t, _ = x.shape
        y = self.mlp(x)  # [B, T, H*W] or [B, T, K]
        if self.basis_size is not None:
            y = self.basis_mean + (y * self.basis_scale) @ self.basis_components
        return y.view(b, t, 1, self.out_size, self.out_size).permute(0, 2, 1, 3, 4)
