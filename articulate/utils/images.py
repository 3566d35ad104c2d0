"""Small image helpers shared by the media callback and the modules' sample PNGs."""

from __future__ import annotations

import numpy as np


def enlarge(img: np.ndarray, min_height: int = 192) -> np.ndarray:
    """Integer nearest-neighbour upscaling of an ``[H, W(, C)]`` image to at least ``min_height`` rows:
    32-64 px frames and 64 x 64 mels stay legible (browsers and viewers blur small images)."""
    k = max(1, -(-min_height // img.shape[0]))
    return img if k == 1 else img.repeat(k, axis=0).repeat(k, axis=1)


def comparison_sheet(real, pred, max_frames: int = 8) -> np.ndarray:
    """Rows real / generated frames of each clip (``[B, 1, T, H, W]`` tensors or arrays in [-1, 1]) -> uint8
    image, each row enlarged (nearest neighbour) to at least 128 px so that 32-64 px frames are legible."""
    real, pred = np.asarray(real, dtype=np.float32), np.asarray(pred, dtype=np.float32)
    rows = []
    for b in range(real.shape[0]):
        t_idx = np.linspace(0, real.shape[2] - 1, min(max_frames, real.shape[2])).round().astype(int)
        for v in (real, pred):
            frames = np.rint((np.clip(v[b, 0, t_idx], -1, 1) + 1) * 127.5).astype(np.uint8)
            rows.append(np.concatenate(list(frames), axis=1))
    return np.concatenate([enlarge(r, min_height=128) for r in rows], axis=0)


def write_png(path, img: np.ndarray):
    """Write an image atomically (temp file, then rename), creating the folder."""
    from pathlib import Path

    import imageio.v3 as iio

    from articulate.utils.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, img, extension=".png")
    return path
