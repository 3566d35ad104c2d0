"""Self residual attention A: masks the moving muscles of each tagged-MRI frame.

The paper: residual frames d_t = |x_t - x_{t-1}| (t = 2..T) go through a 2D encoder-decoder
(four convolutions, four symmetric transposed convolutions, then a 1 x 1 convolution and a
sigmoid) that gives a mask a_t; the translator sees x'_t = a_t * x_t. A has no labels: it is
trained by the reconstruction loss alone (routing is the LightningModule's job).

Frame 1 has no residual. The paper only defines t >= 2; we keep all T frames (so F has the same
input with or without A, which the "w/o attention" ablation needs) and give frame 1 a mask by
``first_frame``:

- ``"repeat"`` (default): d_1 := d_2 = |x_2 - x_1|. The motion between frames 1 and 2 is the best
  evidence of what moves around frame 1, and frame 1 is then masked like every other frame.
- ``"ones"``: a_1 = 1, frame 1 passes unmasked (A's mask for it is not computed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from articulate.networks.layout import channels_last

FirstFrame = Literal["repeat", "ones"]


class ResidualAttention(nn.Module):
    """A: ``x [B, 1, T, H, W]`` -> ``(x' = a * x, a)``, both ``[B, 1, T, H, W]``, ``a`` in (0, 1).

    Args:
        channels: widths of the four (by default) stride-2 convolutions; the transposed
            convolutions mirror them (the last one keeps ``channels[0]``), then a 1 x 1 conv.
        first_frame: how frame 1 (no residual) gets its mask, see the module docstring.

        kaiming_init: He-initialise the convolutions (normal, fan-in, ReLU gain; zero bias). PyTorch's
            default initialisation has a third of that gain: through A's nine layers the residual's
            signal shrinks ~1000x and every mask starts as one constant whatever the frame, so L_rec
            has nothing spatial to refine (the paper does not state an init).
        init_mask: the mask where nothing moves at the start (the head's bias is its logit). ``None`` keeps the
            head's default (~0.5 everywhere). A low value starts with the static frame dimmed, and
            L_rec opens the mask where the frames help; where the frame is black, ``x' = a x`` gives the
            mask no gradient, so the starting value stays there.

    Closed pixels are dimmed towards black (``x' = a x``, the paper). Showing them as noise of their own
    temporal statistics instead was measured and removed (F learnt far more slowly through the noise):
    docs/experiments/mri2audio.md.

    H and W must be divisible by ``2 ** len(channels)`` (128 / 16 = 8 for the paper's size).
    Frames are processed as one 2D batch of ``B * T`` images.
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32, 64, 128), first_frame: FirstFrame = "repeat",
                 kaiming_init: bool = False, init_mask: float | None = None):
        super().__init__()
        channels = list(channels)
        if not channels:
            raise ValueError("channels must list at least one layer")
        if first_frame not in ("repeat", "ones"):
            raise ValueError(f"first_frame must be 'repeat' or 'ones', got {first_frame!r}")
        self.first_frame = first_frame
        self.depth = len(channels)
        widths = [in_channels, *channels]
        self.encoder = nn.ModuleList(
            nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:])
        )
        mirror = [*channels[::-1], channels[0]]
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1) for a, b in zip(mirror[:-1], mirror[1:])
        )
        self.head = nn.Conv2d(channels[0], in_channels, kernel_size=1)
        if init_mask is not None and not 0.0 < float(init_mask) < 1.0:
            raise ValueError(f"init_mask must be in (0, 1), got {init_mask}")
        if kaiming_init:
            for conv in self.encoder:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
            for deconv in self.decoder:  # stride 2, kernel 4: each output pixel sums in_channels x 2 x 2 weights
                nn.init.normal_(deconv.weight, 0.0, (2.0 / (deconv.in_channels * 4)) ** 0.5)
                nn.init.zeros_(deconv.bias)
        if init_mask is not None:
            with torch.no_grad():
                self.head.bias.fill_(float(torch.logit(torch.tensor(float(init_mask)))))

    @staticmethod
    def residuals(x: torch.Tensor) -> torch.Tensor:
        """``|x_t - x_{t-1}|`` for t = 2..T: ``[B, C, T-1, H, W]``."""
        return (x[:, :, 1:] - x[:, :, :-1]).abs()

    def masks_of(self, residual: torch.Tensor) -> torch.Tensor:
        """Masks of residual frames ``[N, C, H, W]`` -> ``[N, C, H, W]`` in (0, 1)."""
        h = channels_last(residual)  # on CPU: oneDNN's own layout, same values in less time
        for conv in self.encoder:
            h = F.relu(conv(h))
        for deconv in self.decoder:
            h = F.relu(deconv(h))
        return torch.sigmoid(self.head(h))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 5:
            raise ValueError(f"expected [B, C, T, H, W], got shape {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        if t < 2:
            raise ValueError(f"residual attention needs at least 2 frames, got {t}")
        step = 2**self.depth
        if h % step or w % step:
            raise ValueError(f"frame size {h}x{w} must be divisible by {step} (2 ** number of conv layers)")
        d = self.residuals(x)  # [B, C, T-1, H, W]
        if self.first_frame == "repeat":
            d = torch.cat([d[:, :, :1], d], dim=2)
        frames = d.transpose(1, 2).reshape(-1, c, h, w)
        a = self.masks_of(frames).reshape(b, -1, c, h, w).transpose(1, 2)
        if self.first_frame == "ones":
            a = torch.cat([torch.ones_like(x[:, :, :1]), a], dim=2)
        return a * x, a
