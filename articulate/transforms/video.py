"""Ultrasound video frames: resampling in time and resizing in space (DataModules and inference share them)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["resample_frames", "resize_video"]


def resample_frames(frames: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear interpolation in time of ``[F, H, W]`` frames from ``fps_in`` to ``fps_out``.

    Output frame i covers ``[i/fps_out, (i+1)/fps_out)``; its value is interpolated at that interval's
    centre from the input frames' centres. The output has ``floor(F * fps_out / fps_in)`` frames, so
    every output frame lies inside the recorded span.
    """
    n_in = frames.shape[0]
    n_out = int(math.floor(n_in * fps_out / fps_in + 1e-9))
    pos = np.clip((np.arange(n_out) + 0.5) * fps_in / fps_out - 0.5, 0, n_in - 1)
    i0 = np.minimum(np.floor(pos).astype(int), max(n_in - 2, 0))
    w = (pos - i0)[:, None, None]
    i1 = np.minimum(i0 + 1, n_in - 1)
    out = frames[i0].astype(np.float32) * (1 - w) + frames[i1].astype(np.float32) * w
    return np.clip(np.rint(out), 0, 255).astype(np.uint8) if frames.dtype == np.uint8 else out.astype(frames.dtype)


def resize_video(video: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B, C, T, size, size]`` frame by frame."""
    b, c, t, h, w = video.shape
    x = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    x = F.interpolate(x, size=(size, size), mode=mode, **kw)
    return x.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)
