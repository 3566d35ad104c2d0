"""Heatmap keypoint network for tongue contours: a small residual U-Net trained from scratch.

Why a U-Net and not DeepLabCut's ResNet-50 / MobileNet: those reach 0.93 mm because they start
from ImageNet weights, which this project cannot download, and a ResNet-50 from scratch does not
train on 2 CPU cores in minutes. What the task needs is (1) a receptive field covering the whole
tongue, because which of the 11 points a bright ridge pixel is (tongueBody1 or tongueBody2) is
decided by the shape of the entire contour, and (2) high-resolution output for sub-pixel
positions. An encoder down to 1/16 of the input gives (1); skip connections carry the detail back
to a 1/2-resolution head, as in HRNet's high-resolution branch, for (2). Optional coordinate
channels (CoordConv) let the network learn where in the fan a keypoint is likely, which a purely
translation-equivariant network cannot. At 128 x 160 input and ``base_channels=16`` it has about
0.5 M parameters and ~0.3 GFLOP per image.

Input ``[B, 1, H, W]`` in [0, 1] (H, W divisible by ``2 ** depth``); output heatmaps
``[B, K, H / stride, W / stride]`` (``stride`` = ``output_stride``, 1 or 2): one Gaussian-shaped
peak per keypoint, decoded by :func:`articulate.networks.uti2contour.heatmaps.decode_heatmaps`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HeatmapUNet"]


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = _norm(norm, cout)
        self.skip = None if (cin == cout and stride == 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.n1(self.conv1(x)))
        y = self.n2(self.conv2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class HeatmapUNet(nn.Module):
    """Residual U-Net: stem at 1/2, ``depth`` levels down to 1/2**depth, decoder back to 1/``output_stride``.

    Args:
        num_keypoints: heatmaps out (DLC's ultrasound model: 14 = 11 tongue points + hyoid,
            mandible, short tendon).
        base_channels: channels at 1/2 resolution, doubled per level up to ``max_channels``.
        depth: number of stride-2 levels below the stem (4 -> 1/16 at the bottom with the stem).
        blocks: residual blocks per level.
        output_stride: 2 (head at 1/2 input resolution) or 1 (one more upsampling).
        coord_channels: append normalised x, y coordinate maps to the input.
        norm: ``batch`` or ``group``.
    """

    def __init__(self, num_keypoints: int = 14, in_channels: int = 1, base_channels: int = 16, depth: int = 4,
                 blocks: int = 1, max_channels: int = 256, output_stride: int = 2, coord_channels: bool = True,
                 norm: str = "batch"):
        super().__init__()
        # plain-data record of the constructor call: the checkpoint stores it so that
        # articulate.contour.tracker.ContourTracker can rebuild the network without the training code
        self.init_args = {"num_keypoints": int(num_keypoints), "in_channels": int(in_channels),
                          "base_channels": int(base_channels), "depth": int(depth), "blocks": int(blocks),
                          "max_channels": int(max_channels), "output_stride": int(output_stride),
                          "coord_channels": bool(coord_channels), "norm": str(norm)}
        if output_stride not in (1, 2):
            raise ValueError(f"output_stride must be 1 or 2, got {output_stride}")
        self.num_keypoints, self.output_stride, self.coord_channels = int(num_keypoints), int(output_stride), bool(coord_channels)
        self.downsample = 2 ** (depth + 1)
        cin = in_channels + (2 if coord_channels else 0)
        ch = [min(base_channels * 2 ** i, max_channels) for i in range(depth + 1)]
        self.stem = nn.Sequential(nn.Conv2d(cin, ch[0], 3, 2, 1, bias=False), _norm(norm, ch[0]), nn.ReLU(inplace=True),
                                  *[ResBlock(ch[0], ch[0], norm) for _ in range(blocks)])
        self.down = nn.ModuleList()
        for i in range(depth):
            self.down.append(nn.Sequential(ResBlock(ch[i], ch[i + 1], norm, stride=2),
                                           *[ResBlock(ch[i + 1], ch[i + 1], norm) for _ in range(blocks - 1)]))
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(nn.ModuleDict({
                "reduce": nn.Conv2d(ch[i + 1], ch[i], 1, bias=False),
                "block": nn.Sequential(ResBlock(2 * ch[i], ch[i], norm), *[ResBlock(ch[i], ch[i], norm) for _ in range(blocks - 1)]),
            }))
        self.final_up = None
        if output_stride == 1:
            self.final_up = nn.Sequential(nn.Conv2d(ch[0] + cin, ch[0], 3, 1, 1, bias=False), _norm(norm, ch[0]), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(ch[0], num_keypoints, 1)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=1e-3)

    def _coords(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)[None, None, :, None].expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)[None, None, None, :].expand(b, 1, h, w)
        return torch.cat([x, xs, ys], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(f"input {h} x {w} must be divisible by {self.downsample}")
        inp = self._coords(x) if self.coord_channels else x
        feats = [self.stem(inp)]
        for level in self.down:
            feats.append(level(feats[-1]))
        y = feats[-1]
        for k, up in enumerate(self.up):
            skip = feats[-2 - k]
            y = F.interpolate(up["reduce"](y), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up["block"](torch.cat([y, skip], 1))
        if self.final_up is not None:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
            y = self.final_up(torch.cat([y, inp], 1))
        return self.head(y)
