"""Deterministic crop positions shared by the evaluation crops and the phantom's ceiling."""

from __future__ import annotations

import numpy as np


def crop_starts(n_samples: int, crop: int, count: int) -> list[int]:
    """``count`` deterministic crop starts: the centred crop for 1, else evenly spaced over the signal."""
    span = max(n_samples - crop, 0)
    if count <= 1:
        return [span // 2]
    return [int(round(v)) for v in np.linspace(0, span, count)]
