"""Small image helpers shared by the media callback and the modules' sample PNGs."""

from __future__ import annotations

import numpy as np


def enlarge(img: np.ndarray, min_height: int = 192) -> np.ndarray:
    """Integer nearest-neighbour upscaling of an ``[H, W(, C)]`` image to at least ``min_height`` rows:
    32-64 px frames and 64 x 64 mels stay legible (browsers and viewers blur small images)."""
    k = max(1, -(-min_height // img.shape[0]))
    return img if k == 1 else img.repeat(k, axis=0).repeat(k, axis=1)
