"""Tagged-MRI sequences onto a model's grid (shared by the DataModule and the inference object)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["prepare_mri"]


def prepare_mri(frames: np.ndarray, n_frames: int, size: int, percentiles: tuple[float, float] = (0.5, 99.5)) -> torch.Tensor:
    """``[T, H, W]`` -> float32 ``[n_frames, size, size]`` in [0, 1].

    Space: bilinear with antialiasing (a plain trilinear resize would alias when shrinking, e.g.
    256 -> 128 px); time: linear (``align_corners=False``, frame centres). Equal sizes are left
    untouched. Intensity: ``(x - p_lo) / (p_hi - p_lo)`` clipped, with the percentiles taken over the
    whole sequence: robust to the few very bright voxels of tagged MRI (fat, vessels, tag
    crossings) that would dim everything under max scaling, and, being per sequence rather than per
    frame, keeping the fading of the tags over time.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    t, h, w = x.shape
    if (h, w) != (size, size):
        x = F.interpolate(x[:, None], size=(size, size), mode="bilinear", align_corners=False,
                          antialias=(h > size or w > size))[:, 0]
    if t != n_frames:
        flat = x.reshape(t, -1).T[:, None]  # [H*W, 1, T]
        x = F.interpolate(flat, size=n_frames, mode="linear", align_corners=False)[:, 0].T.reshape(n_frames, size, size)
    lo, hi = np.percentile(x.numpy(), percentiles)
    if not hi > lo:  # a constant sequence: nothing to scale
        return torch.zeros_like(x)
    return ((x - float(lo)) / float(hi - lo)).clamp_(0.0, 1.0).contiguous()
