"""Tongue contours from keypoints: a centripetal Catmull-Rom spline through the points in order.

Why this spline: it passes through every keypoint (a labeller's points are on the surface), does
not overshoot or form loops between unevenly spaced points (the centripetal parametrisation,
alpha = 0.5), and needs no global solve, so a missing point just shortens the curve. The curve is
resampled uniformly by arc length, so "the mean over a curve's points" in the MSD is a mean along
the curve, whatever the keypoint spacing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["catmull_rom", "resample_polyline", "contour_from_keypoints", "polyline_length"]


def polyline_length(curve: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(curve, axis=0), axis=1).sum()) if len(curve) > 1 else 0.0


def resample_polyline(curve: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced by arc length along the polyline ``curve [M, 2]`` (ends kept)."""
    curve = np.asarray(curve, dtype=np.float64)
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-12])
    curve, seg = curve[keep], seg[seg > 1e-12]
    if len(curve) == 1:
        return np.repeat(curve, n, axis=0)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, curve[:, 0]), np.interp(t, s, curve[:, 1])], -1)


def catmull_rom(points: np.ndarray, per_segment: int = 32, alpha: float = 0.5) -> np.ndarray:
    """Dense polyline through ``points [K, 2]`` (K >= 2), ``per_segment`` samples per span."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 2:
        return p.copy()
    if len(p) == 2:
        u = np.linspace(0, 1, per_segment + 1)[:, None]
        return p[0] * (1 - u) + p[1] * u
    # phantom end points continue the first / last span (reflection keeps the ends straight-ish)
    ext = np.concatenate([[2 * p[0] - p[1]], p, [2 * p[-1] - p[-2]]])
    out = [p[:1]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        t0 = 0.0
        t1 = t0 + max(np.linalg.norm(p1 - p0), 1e-9) ** alpha
        t2 = t1 + max(np.linalg.norm(p2 - p1), 1e-9) ** alpha
        t3 = t2 + max(np.linalg.norm(p3 - p2), 1e-9) ** alpha
        t = np.linspace(t1, t2, per_segment + 1)[1:, None]
        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.concatenate(out)


def contour_from_keypoints(keypoints, n: int = 100, min_points: int = 2) -> np.ndarray | None:
    """The contour through the finite keypoints ``[K, 2]`` (in their order; NaN rows skipped),
    resampled to ``n`` points by arc length; None when fewer than ``min_points`` are finite."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    kp = kp[np.isfinite(kp).all(axis=1)]
    if len(kp) < max(2, min_points):
        return None
    return resample_polyline(catmull_rom(kp), n)
