"""Baselines scored with the same MSD code as the network: a mean shape and a classical edge tracer.

Both return what :class:`articulate.contour.tracker.ContourTracker` returns for frames
``[F, H, W]``: keypoints ``[F, K, 2]`` (x, y px, NaN where nothing is found) and confidence
``[F, K]`` in [0, 1].

- :class:`MeanShapeBaseline`: the average training keypoints, for every frame. It knows where
  tongues usually are and nothing about this frame: a model must beat it to have looked at the
  image at all.
- :class:`EdgeTracer`: the classical tracker users know (the idea behind EdgeTrak-like and
  "brightest ridge" trackers). Per scan line (a ray from the probe centre of the fitted fan; image
  columns when no fan is found) it scores the bright-to-dark step going away from the probe (the
  tongue surface is a bright echo with the dark air shadow beyond), then picks one depth per
  scan line by dynamic programming that trades edge strength against jumps between neighbouring
  lines (a smooth contour), keeps the longest run of lines with a clear edge, and resamples that
  curve into the tongue keypoints (root on the left, tip on the right, as in DLC's images).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from articulate.contour.curves import resample_polyline
from articulate.contour.fan import Fan, estimate_fan

__all__ = ["MeanShapeBaseline", "EdgeTracer"]


def _as_frames(frames) -> np.ndarray:
    arr = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"frames must be [F, H, W], got {arr.shape}")
    arr = arr.astype(np.float64)
    return arr / 255.0 if arr.max(initial=0) > 1.5 else arr


class MeanShapeBaseline:
    """The per-keypoint mean of training keypoints ``[N, K, 2]`` (NaN ignored) for every frame."""

    def __init__(self, mean_keypoints: np.ndarray):
        self.mean = np.asarray(mean_keypoints, dtype=np.float64)

    @classmethod
    def fit(cls, keypoints: np.ndarray) -> MeanShapeBaseline:
        kp = np.asarray(keypoints, dtype=np.float64)
        with np.errstate(all="ignore"):
            return cls(np.nanmean(kp, axis=0))

    def __call__(self, frames, **_) -> tuple[np.ndarray, np.ndarray]:
        n = len(frames)
        kp = np.repeat(self.mean[None], n, axis=0)
        return kp, np.isfinite(kp).all(-1).astype(np.float64)


class EdgeTracer:
    """Classical scan-line edge tracker (see the module docstring). Pixel parameters are for 320 x 240
    exports (DLC's labelled frames); pass ``scale`` when tracing other sizes.

    Args:
        num_points: keypoints out (the tongue points: 11).
        num_lines: scan lines across the fan.
        edge_width: px averaged on each side of a candidate edge.
        smooth: Gaussian smoothing of the image (px) before scoring.
        jump_penalty: cost per px of depth change between neighbouring lines, relative to a
            typical edge strength.
        max_jump: largest depth change (px) between neighbouring lines.
        min_strength: fraction of the strongest edge below which a line has "no clear edge".
        near_margin: fraction of the depth next to the probe that is never the surface (probe
            ring-down, gel).
    """

    def __init__(self, num_points: int = 11, num_lines: int = 64, edge_width: int = 4, smooth: float = 1.5,
                 jump_penalty: float = 0.02, max_jump: float = 6.0, min_strength: float = 0.2, near_margin: float = 0.35):
        self.num_points, self.num_lines, self.edge_width, self.smooth = num_points, num_lines, edge_width, smooth
        self.jump_penalty, self.max_jump, self.min_strength, self.near_margin = jump_penalty, max_jump, min_strength, near_margin

    # ------------------------------------------------------------------ scan geometry
    def _lines(self, fan: Fan | None, shape: tuple[int, int], mean_img: np.ndarray) -> np.ndarray | None:
        """Sample positions ``[L, R, 2]`` (x, y), each line from the probe outwards, lines left to right."""
        h, w = shape
        if fan is not None:
            margin = 0.04 * (fan.theta_max - fan.theta_min)
            th = np.linspace(fan.theta_min + margin, fan.theta_max - margin, self.num_lines)
            r0 = fan.r_min + self.near_margin * (fan.r_max - fan.r_min)
            r = np.arange(r0, fan.r_max - 2.0, 1.0)
            return fan.ray(th, r) if r.size > 4 * self.edge_width else None
        # no fan: vertical lines through the non-black region, from the brighter-echo (probe) side
        mask = ndimage.gaussian_filter(mean_img, 2.0) > 0.01
        cols = np.flatnonzero(mask.any(0))
        rows = np.flatnonzero(mask.any(1))
        if cols.size < 8 or rows.size < 8:
            return None
        xs = np.linspace(cols[0] + 2, cols[-1] - 2, self.num_lines)
        top, bottom = rows[0], rows[-1]
        q = max(1, (bottom - top) // 5)
        probe_bottom = mask[top:top + q].sum() > mask[bottom - q:bottom].sum()
        depth = bottom - top
        ys = np.arange(bottom - self.near_margin * depth, top + 2, -1.0) if probe_bottom else \
            np.arange(top + self.near_margin * depth, bottom - 2, 1.0)
        return np.stack(np.broadcast_arrays(xs[:, None], ys[None, :]), -1)

    # ------------------------------------------------------------------ one frame
    def _trace(self, img: np.ndarray, pts: np.ndarray, inside: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        sm = ndimage.gaussian_filter(img, self.smooth * scale) if self.smooth > 0 else img
        coords = [pts[..., 1].ravel(), pts[..., 0].ravel()]
        prof = ndimage.map_coordinates(sm, coords, order=1, cval=0.0).reshape(pts.shape[:2])
        ok = ndimage.map_coordinates(inside.astype(np.float64), coords, order=0, cval=0.0).reshape(pts.shape[:2]) > 0.5
        w = max(1, int(round(self.edge_width * scale)))
        wo = 3 * w
        c = np.cumsum(np.pad(prof, ((0, 0), (1, 0))), axis=1)
        n_r = prof.shape[1]
        j = np.arange(w, n_r - wo)
        inner = (c[:, j] - c[:, j - w]) / w  # probe side of the edge: the bright surface echo
        outer = (c[:, j + wo] - c[:, j]) / wo  # beyond it: the dark air shadow
        # the far end of the window must still be inside the fan: the fan's own edge is no tongue
        score = np.where(ok[:, j + wo], np.clip(inner - outer, 0.0, None), 0.0)
        norm = float(np.percentile(score, 99)) or 1.0
        score = score / norm
        # dynamic programming across lines: best path with a penalty per px of depth change
        n_l, n_j = score.shape
        step = max(1, int(np.ceil(self.max_jump * scale)))
        penalty = self.jump_penalty / scale
        acc = score[0].copy()
        back = np.zeros((n_l, n_j), dtype=np.int64)
        offsets = np.arange(-step, step + 1)
        for i in range(1, n_l):
            cand = np.full((offsets.size, n_j), -np.inf)
            for k, o in enumerate(offsets):
                src = np.arange(n_j) - o
                ok = (src >= 0) & (src < n_j)
                cand[k, ok] = acc[src[ok]] - penalty * abs(o)
            best = np.argmax(cand, axis=0)
            back[i] = np.arange(n_j) - offsets[best]
            acc = cand[best, np.arange(n_j)] + score[i]
        path = np.zeros(n_l, dtype=np.int64)
        path[-1] = int(np.argmax(acc))
        for i in range(n_l - 1, 0, -1):
            path[i - 1] = back[i, path[i]]
        strength = score[np.arange(n_l), path]
        return path + w, strength

    def trace_frame(self, img: np.ndarray, fan: Fan | None, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        pts = self._lines(fan, img.shape, img)
        k = self.num_points
        nan = (np.full((k, 2), np.nan), np.zeros(k))
        if pts is None:
            return nan
        inside = ndimage.binary_erosion(ndimage.gaussian_filter(img, 2.0) > 0.01, iterations=3)
        depth_idx, strength = self._trace(img, pts, inside, scale)
        good = strength >= self.min_strength * max(float(strength.max()), 1e-9)
        if good.sum() < 3:
            return nan
        # the longest run of lines with a clear edge (short gaps of weak lines are bridged)
        idx = np.flatnonzero(good)
        runs = np.split(idx, np.flatnonzero(np.diff(idx) > 3) + 1)
        run = max(runs, key=len)
        lines = np.arange(run[0], run[-1] + 1)
        xy = pts[lines, depth_idx[lines]]
        kp = resample_polyline(xy, k)
        conf_line = np.interp(np.linspace(0, len(lines) - 1, k), np.arange(len(lines)), strength[lines])
        return kp, np.clip(conf_line, 0.0, 1.0)

    def __call__(self, frames, fan: Fan | None = None, scale: float = 1.0, **_) -> tuple[np.ndarray, np.ndarray]:
        """Trace frames ``[F, H, W]``; ``fan`` defaults to the fit of their mean; ``scale`` is the size of
        these frames relative to the images the pixel parameters were chosen for (0.5 = half size)."""
        arr = _as_frames(frames)
        if fan is None:
            fan = estimate_fan(arr.mean(0) * 255.0)
        out = [self.trace_frame(f, fan, scale) for f in arr]
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
