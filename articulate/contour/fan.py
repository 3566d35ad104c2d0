"""The ultrasound fan in an exported image: probe centre (apex), depth range and angular range.

Exported ultrasound (PNG frames, videos) has lost its scan parameters, but the fan's outline keeps
them: the far edge is an arc centred on the probe's virtual centre, the near edge (the probe face)
an arc around the same centre. We fit a circle to the far arc (robust, trimmed least squares),
then read the near radius and the angular range around that centre. Used by the edge tracer
(scan lines are rays from the apex), by the fan-crop augmentation, and to check a system's pixel
size from its known depth (``far / near`` radius ratio = ``(ZeroOffset + PixPerVector) / ZeroOffset``).

Angles are measured from the probe axis (the ray through the middle of the fan), positive towards
image +x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from articulate.contour.geometry import clean_borders

__all__ = ["Fan", "estimate_fan", "fan_from_converter"]


@dataclass(frozen=True)
class Fan:
    apex: tuple[float, float]  # (x, y) image px, the probe's virtual centre
    r_min: float  # px, near edge (probe face)
    r_max: float  # px, far edge
    theta_min: float  # rad from the probe axis
    theta_max: float
    probe: str  # "top" or "bottom": the side of the image the probe is on
    mask: np.ndarray | None = None  # bool [H, W], pixels inside the fan

    @property
    def axis(self) -> np.ndarray:
        """Unit vector of the probe axis pointing into the tissue (image x, y)."""
        return np.array([0.0, 1.0]) if self.probe == "top" else np.array([0.0, -1.0])

    def ray(self, theta: float | np.ndarray, r: np.ndarray) -> np.ndarray:
        """Points ``[..., len(r), 2]`` at angle(s) ``theta`` and radii ``r`` (px)."""
        th = np.asarray(theta, dtype=np.float64)[..., None]
        sy = 1.0 if self.probe == "top" else -1.0
        x = self.apex[0] + r * np.sin(th)
        y = self.apex[1] + sy * r * np.cos(th)
        return np.stack([x, y], -1)

    def polar(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(radius, angle) of image points ``[..., 2]``."""
        p = np.asarray(points, dtype=np.float64)
        dx = p[..., 0] - self.apex[0]
        dy = (p[..., 1] - self.apex[1]) * (1.0 if self.probe == "top" else -1.0)
        return np.hypot(dx, dy), np.arctan2(dx, dy)


def _circle_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle: (cx, cy, r)."""
    a = np.stack([x, y, np.ones_like(x)], 1)
    b = x**2 + y**2
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    return float(cx), float(cy), float(math.sqrt(max(sol[2] + cx**2 + cy**2, 0.0)))


def _robust_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Circle fit with trimming of outliers (points of the boundary that are not on the arc)."""
    cx = cy = r = math.nan
    for _ in range(3):
        cx, cy, r = _circle_fit(x, y)
        res = np.abs(np.hypot(x - cx, y - cy) - r)
        ok = res < max(2.0, 2.5 * np.median(res))
        if ok.all() or ok.sum() < 10:
            break
        x, y = x[ok], y[ok]
    return (cx, cy, r) if np.isfinite([cx, cy, r]).all() else None


def estimate_fan(image: np.ndarray, threshold: float | None = None) -> Fan | None:
    """Fit the fan of one frame or (better) the mean of a recording's frames ``[H, W]``; None when
    no fan-shaped region is found."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 16:
        return None
    img = clean_borders(img)
    sm = ndimage.gaussian_filter(img, 1.0)
    thr = threshold if threshold is not None else max(1.0, 0.05 * float(np.percentile(sm, 99)))
    lab, n = ndimage.label(sm > thr)
    if n == 0:
        return None
    sizes = ndimage.sum(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    mask = ndimage.binary_fill_holes(lab == (1 + int(np.argmax(sizes))))
    rows, cols = np.nonzero(mask)
    if rows.size < 0.02 * mask.size:
        return None
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    q = max(1, (r1 - r0) // 5)
    top_w = mask[r0:r0 + q].sum(1).mean()
    bot_w = mask[r1 - q + 1:r1 + 1].sum(1).mean()
    probe = "top" if top_w < bot_w else "bottom"
    m = mask if probe == "top" else mask[::-1]  # work with the probe at the top
    h = m.shape[0]
    colset = np.arange(c0, c1 + 1)
    has = m[:, colset].any(0)
    colset = colset[has]
    far = np.array([h - 1 - np.argmax(m[::-1, c]) for c in colset], dtype=np.float64)
    near = np.array([np.argmax(m[:, c]) for c in colset], dtype=np.float64)
    width = colset[-1] - colset[0]
    central = np.abs(colset - 0.5 * (colset[0] + colset[-1])) <= 0.4 * width
    x, y = colset[central].astype(np.float64), far[central]
    # A far edge cut by the image border (or a blanked band) is a long flat run, not the arc: the
    # top of a true arc is flat over a few dozen columns at most.
    vals, counts = np.unique(y, return_counts=True)
    cut = vals[counts > max(8, 0.2 * y.size)]
    keep = (y < h - 1.5) & ~np.isin(y, cut) & ~np.isin(y, cut - 1) & ~np.isin(y, cut + 1)
    fit = _robust_circle(x[keep], y[keep]) if keep.sum() >= 10 else None
    if fit is None or fit[1] > y[keep].min():
        # The far arc is cut by the image border: fit the near arc (the probe face) instead. It is
        # the stretch of the near boundary between the two highest points (the arc's ends).
        mid = int(np.argmax(near))
        left, right = int(np.argmin(near[:mid + 1])), mid + int(np.argmin(near[mid:]))
        span = right - left
        sel = np.arange(left + int(0.1 * span), right - int(0.1 * span) + 1)
        fit = _robust_circle(colset[sel].astype(np.float64), near[sel]) if sel.size >= 10 else None
        if fit is None or fit[1] > near[sel].min():
            return None
        cx, cy, _ = fit
        ys_, xs_ = np.nonzero(m)
        r = float(np.percentile(np.hypot(xs_ - cx, ys_ - cy), 99.5))
    else:
        cx, cy, r = fit
    if not (np.isfinite(cx) and np.isfinite(cy)):
        return None
    inner = np.abs(colset - cx) <= 0.15 * width
    near_r = np.hypot(colset[inner] - cx, near[inner] - cy) if inner.any() else np.array([0.0])
    r_min = float(np.median(near_r))
    ys, xs = np.nonzero(m)
    rr = np.hypot(xs - cx, ys - cy)
    band = (rr > r_min + 0.2 * (r - r_min)) & (rr < r_min + 0.8 * (r - r_min))
    ang = np.arctan2(xs[band] - cx, ys[band] - cy)
    if ang.size < 10:
        return None
    th0, th1 = np.percentile(ang, [0.5, 99.5])
    # plausibility: a probe centre near the image's middle column, a fan symmetric-ish about it
    w_img = mask.shape[1]
    if not (0.0 < r_min < r and -0.25 * w_img < cx < 1.25 * w_img and th0 < 0 < th1 and r / r_min < 25):
        return None
    apex_y = cy if probe == "top" else (mask.shape[0] - 1) - cy
    return Fan(apex=(cx, float(apex_y)), r_min=r_min, r_max=r, theta_min=float(th0), theta_max=float(th1),
               probe=probe, mask=mask)


def fan_from_converter(conv, probe: str = "top") -> Fan:
    """The exact fan of :class:`articulate.readers.ultrasound.FanConverter` output (``probe="bottom"``
    when its images are shown upside down, as DLC's exports are)."""
    s = conv.samples_per_pixel
    p = conv.params
    centre = p.num_vectors // 2
    row, col = conv.apex
    h = conv.size[0]
    apex_y = row if probe == "top" else (h - 1) - row
    return Fan(apex=(float(col), float(apex_y)), r_min=p.zero_offset / s, r_max=(p.zero_offset + p.pix_per_vector - 1) / s,
               theta_min=-centre * p.angle, theta_max=(p.num_vectors - 1 - centre) * p.angle, probe=probe,
               mask=conv.mask if probe == "top" else conv.mask[::-1])
