"""Discriminator D: real or generated 64 x 64 mel? Three conv layers + two fully connected layers.

The paper's D ends in a sigmoid. This module returns the *logit* (the pre-sigmoid value) and
the losses apply ``binary_cross_entropy_with_logits``/``softplus``: log(sigmoid(l)) computed as
-softplus(-l) stays finite for any logit, where log(sigmoid(l)) underflows to log(0) = -inf once
sigmoid(l) rounds to 0 in float32 (l < about -88). ``probability()`` gives the sigmoid output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class MelDiscriminator(nn.Module):
    """D: ``mel [B, 1, H, W]`` -> logits ``[B]``.

    Args:
        channels: widths of the stride-2 convolutions (kernel 4, LeakyReLU 0.2).
        hidden: width of the first fully connected layer.
        pool_size: the conv features are average-pooled to ``pool_size x pool_size`` before the
            fully connected layers (identity for 64 x 64 mels and three convs), so D accepts any size.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (32, 64, 128),
        hidden: int = 256,
        pool_size: int = 8,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        channels = list(channels)
        if not channels:
            raise ValueError("channels must list at least one layer")
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.pool_size = pool_size
        self.negative_slope = negative_slope
        self.fc1 = nn.Linear(channels[-1] * pool_size * pool_size, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = mel
        for conv in self.convs:
            h = F.leaky_relu(conv(h), self.negative_slope)
        if h.shape[-2:] != (self.pool_size, self.pool_size):
            h = F.adaptive_avg_pool2d(h, self.pool_size)
        h = F.leaky_relu(self.fc1(h.flatten(1)), self.negative_slope)
        return self.fc2(h).squeeze(1)

    def probability(self, mel: torch.Tensor) -> torch.Tensor:
        """D(mel) as the paper writes it: the sigmoid of the logit."""
        return torch.sigmoid(self(mel))
