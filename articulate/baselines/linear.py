"""Closed-form ridge regression on z-scored features, shared by the mri2audio ridge probe and the phantom's
learnability report."""

from __future__ import annotations

import numpy as np


def ridge_path(x: np.ndarray, y: np.ndarray, lams) -> list[tuple[np.ndarray, ...]]:
    """Ridge models ``(x_mean, x_std, y_mean, weights)`` for several strengths from one eigendecomposition of
    the Gram matrix (strength ``lam`` per sample: the penalty is ``lam * len(x)``)."""
    mx, sx = x.mean(0), x.std(0) + 1e-6
    my = y.mean(0)
    xs = (x - mx) / sx
    evals, evecs = np.linalg.eigh(xs.T @ xs)
    proj = evecs.T @ (xs.T @ (y - my))
    return [(mx, sx, my, evecs @ (proj / (evals + lam * len(xs))[:, None])) for lam in lams]


def ridge_predict(model: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    mx, sx, my, w = model
    return ((x - mx) / sx) @ w + my
