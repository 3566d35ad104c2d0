"""Keypoint heatmaps: Gaussian targets, the masked loss, and decoding with sub-pixel refinement.

Heatmap pixel (i, j) of a map at ``stride`` covers input pixels ``[stride*j, stride*(j+1))``; its
centre is input coordinate ``stride * (j + 0.5) - 0.5`` (pixel centres at integers, as in
:mod:`articulate.contour.geometry`).

Missing points are MASKED, not trained towards an empty map: an unlabelled tongue tip is usually
still in the image (the labeller could not see it well), so telling the network "no tip here"
would teach it to miss tips. A masked point contributes nothing to the loss or its gradient.

Decoding: argmax, then the peak of the quadratic through the log-heatmap at the argmax and its two
neighbours along x and along y (exact for a Gaussian peak, as in DARK, Zhang et al. CVPR 2020),
after a light Gaussian smoothing that keeps a Gaussian a Gaussian. Confidence is the heatmap's
peak value clipped to [0, 1] (targets peak at 1), DeepLabCut's "likelihood" in the CSV.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["to_heatmap_coords", "to_input_coords", "gaussian_targets", "masked_heatmap_loss", "decode_heatmaps"]


def to_heatmap_coords(xy: torch.Tensor, stride: int) -> torch.Tensor:
    return (xy + 0.5) / stride - 0.5


def to_input_coords(uv: torch.Tensor, stride: int) -> torch.Tensor:
    return (uv + 0.5) * stride - 0.5


def gaussian_targets(xy: torch.Tensor, size: tuple[int, int], stride: int, sigma: float) -> torch.Tensor:
    """Target maps ``[B, K, h, w]`` with a unit-peak Gaussian (``sigma`` heatmap px) at each keypoint
    ``xy [B, K, 2]`` (input px). Missing (NaN) points give all-zero maps (they are masked anyway)."""
    h, w = size
    uv = to_heatmap_coords(xy, stride)
    ok = torch.isfinite(uv).all(-1)
    uv = torch.nan_to_num(uv, nan=-1e4)
    ys = torch.arange(h, device=xy.device, dtype=xy.dtype)
    xs = torch.arange(w, device=xy.device, dtype=xy.dtype)
    gx = torch.exp(-0.5 * ((xs[None, None, :] - uv[..., 0:1]) / sigma) ** 2)  # [B, K, w]
    gy = torch.exp(-0.5 * ((ys[None, None, :] - uv[..., 1:2]) / sigma) ** 2)  # [B, K, h]
    return gy[..., :, None] * gx[..., None, :] * ok[..., None, None].to(xy.dtype)


def masked_heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, fg_weight: float = 0.0) -> torch.Tensor:
    """Mean squared error per keypoint map, weighted by ``weight [B, K]`` (0 = missing point).

    ``fg_weight`` up-weights pixels near the peak (``1 + fg_weight * target``) so the small
    foreground is not drowned by the background early in training. The result is normalised by
    the total weight, so it does not depend on how many points are missing.
    """
    w = weight.to(pred.dtype)
    per_px = (pred - target) ** 2
    if fg_weight:
        per_px = per_px * (1.0 + fg_weight * target)
    per_map = per_px.mean(dim=(-2, -1))
    return (per_map * w).sum() / w.sum().clamp_min(1.0)


def _smooth(heatmaps: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return heatmaps
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, device=heatmaps.device, dtype=heatmaps.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    b, c, h, w = heatmaps.shape
    y = heatmaps.reshape(b * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


@torch.no_grad()
def decode_heatmaps(heatmaps: torch.Tensor, stride: int = 1, smooth_sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, K, h, w]`` -> (keypoints ``[B, K, 2]`` in input px (x, y), confidence ``[B, K]`` in [0, 1])."""
    hm = heatmaps.float()
    b, k, h, w = hm.shape
    conf = hm.reshape(b, k, -1).amax(-1).clamp(0.0, 1.0)
    sm = _smooth(hm, smooth_sigma)
    flat = sm.reshape(b, k, -1)
    idx = flat.argmax(-1)
    iy, ix = idx // w, idx % w
    logs = torch.log(sm.clamp_min(1e-10))

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        yy, xx = yy.clamp(0, h - 1), xx.clamp(0, w - 1)
        return torch.gather(logs.reshape(b, k, -1), 2, (yy * w + xx)[..., None])[..., 0]

    def offset(lm: torch.Tensor, l0: torch.Tensor, lp: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        curv = lm - 2 * l0 + lp
        off = torch.where(curv < -1e-6, 0.5 * (lm - lp) / curv, torch.zeros_like(l0))
        return torch.where(inside, off.clamp(-1.0, 1.0), torch.zeros_like(off))

    l0 = at(iy, ix)
    dx = offset(at(iy, ix - 1), l0, at(iy, ix + 1), (ix > 0) & (ix < w - 1))
    dy = offset(at(iy - 1, ix), l0, at(iy + 1, ix), (iy > 0) & (iy < h - 1))
    uv = torch.stack([ix.to(hm.dtype) + dx, iy.to(hm.dtype) + dy], -1)
    return to_input_coords(uv, stride), conf
