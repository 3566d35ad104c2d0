"""Evaluation metrics shared by both directions.

``articulate.metrics.functional`` holds stateless per-image functions (corr2d, rmse, psnr); the
metric classes are torchmetrics ``Metric`` subclasses whose states sync across DDP ranks and
de-duplicate the samples a ``DistributedSampler`` repeats to pad the last batch (see
:mod:`articulate.metrics.dedup`). Classes are imported lazily so that ``import articulate.metrics``
does not pull in lpips/torchvision.
"""

from __future__ import annotations

import importlib
from typing import Any

# Everything is lazy, functional included: PESQ's worker processes import a module of this package
# and must not pay for importing torch.
_LAZY = {
    "corr2d": "articulate.metrics.functional",
    "rmse": "articulate.metrics.functional",
    "detail_ratio": "articulate.metrics.functional",
    "psnr": "articulate.metrics.functional",
    "to_pixels": "articulate.metrics.functional",
    "Corr2D": "articulate.metrics.corr2d",
    "PESQ": "articulate.metrics.pesq",
    "pesq_batch": "articulate.metrics.pesq",
    "LPIPS": "articulate.metrics.lpips",
    "FID": "articulate.metrics.frechet",
    "FVD": "articulate.metrics.frechet",
    "frechet_distance": "articulate.metrics.frechet",
    "RMSE": "articulate.metrics.image",
    "PSNR": "articulate.metrics.image",
    "SampleMetric": "articulate.metrics.dedup",
    "ContourMSD": "articulate.metrics.contour",
    "msd": "articulate.metrics.contour",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'articulate.metrics' has no attribute {name!r}")


__all__ = list(_LAZY)
