"""The DNN baseline of acoustic-to-ultrasound inversion (Porras, Csapo et al. 2019; wav2uti paper [8]).

Frame-wise acoustic features with a symmetric context window of ``context`` frames on each side
are flattened and mapped by a fully connected ReLU network (default 5 x 1000 as in the original)
to one ultrasound frame. Each output frame is predicted independently (no temporal model), which is
exactly the limitation the diffusion model addresses.
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
                 out_size: int = 64, dropout: float = 0.0):
        super().__init__()
        self.in_dim, self.context, self.out_size = int(in_dim), int(context), int(out_size)
        layers: list[nn.Module] = [nn.LayerNorm(self.in_dim * (2 * self.context + 1))]
        width = self.in_dim * (2 * self.context + 1)
        for _ in range(int(num_layers)):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, self.out_size * self.out_size))
        self.mlp = nn.Sequential(*layers)

    def bytes_per_frame(self) -> int:
        """Activation memory of one frame in a forward pass (float32): what chunked inference budgets."""
        widths = [m.out_features for m in self.mlp if isinstance(m, nn.Linear)]
        return 4 * (2 * self.in_dim * (2 * self.context + 1) + 2 * sum(widths))

    def forward(self, feats: torch.Tensor, margin: int = 0) -> torch.Tensor:
        x = context_windows(feats.float(), self.context)
        x = x[:, margin:x.shape[1] - margin]
        b, t, _ = x.shape
        y = self.mlp(x)  # [B, T, H*W]
        return y.view(b, t, 1, self.out_size, self.out_size).permute(0, 2, 1, 3, 4)
