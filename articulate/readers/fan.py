"""The ultrasound fan inside a video frame, the probe's side, and aspect-preserving resizing.

Ultrasound exported as video (screen captures, scanner exports) carries more than the image:
black margins, depth scale marks, text and other UI, and often the probe at the bottom, whereas
``.ult`` recordings rendered by :class:`articulate.readers.scan_conversion.FanConverter` have the
probe at the top. The framework's one convention is FanConverter's: **probe at the top centre,
fan opening downward**; every video is flipped to it here.

Fan detection (:func:`detect_fan`) uses what distinguishes the image from its decoration: the
image changes from frame to frame (speckle, tongue motion), the decoration does not.

1. Over up to ``max_frames`` evenly spaced frames: per-pixel temporal standard deviation and the
   fraction of frames in which the pixel is not black (> ``black_level``).
2. Active pixels: standard deviation above ``active_std`` (grey levels); opened with a 3x3
   square (single flickering pixels of compression noise go) and the largest connected component
   kept: the fan. Static marks and UI are not active, so they are not part of it.
3. The mask is the component's convex hull (a fan sector is convex but for the probe's notch),
   restricted to pixels that are non-black in some frame (which cuts the notch out again), holes
   filled: dark tissue that never moves stays inside the fan.
4. The probe side: the two longest straight edges of the hull (the fan's sides, excluding edges
   along the frame border) meet at the probe's virtual centre, the apex. ``apex_side`` says
   whether it lies above or below the fan's centre. Where the sides are not found (a fan cut by
   the frame), the narrower end of the mask decides (mean width of the top vs bottom fifth).

:func:`fit_frames` resizes frames to a square (or any) size without distorting them: one scale
for both axes, padded with black, horizontally centred and top-aligned, the layout FanConverter
gives ``.ult`` renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from articulate.utils.atomic import atomic_path

__all__ = ["FanRegion", "detect_fan", "apply_roi", "orient_frames", "fit_frames", "write_fan_png", "PROBE_SIDES"]

PROBE_SIDES = ("auto", "top", "bottom")


@dataclass
class FanRegion:
    """Where the ultrasound image is in a video frame.

    ``mask`` [H, W] bool (True inside the fan), ``bbox`` (x, y, w, h) of the mask, ``apex_side``
    ``"top"`` / ``"bottom"`` (where the probe is in the original frames), ``apex`` (row, col) of
    the probe's virtual centre when the fan's sides were found, ``fraction`` of the frame inside
    the fan, ``method`` how the side was decided (``"sides"`` or ``"width"``).
    """

    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    apex_side: str
    apex: tuple[float, float] | None
    fraction: float
    method: str

    def describe(self) -> dict:
        x, y, w, h = self.bbox
        return {
            "bbox_xywh": [int(x), int(y), int(w), int(h)],
            "apex_side": self.apex_side,
            "apex_rc": [round(float(self.apex[0]), 1), round(float(self.apex[1]), 1)] if self.apex else None,
            "fraction_of_frame": round(float(self.fraction), 4),
            "side_from": self.method,
        }


def _sample(frames: np.ndarray, max_frames: int) -> np.ndarray:
    idx = np.unique(np.linspace(0, frames.shape[0] - 1, min(max_frames, frames.shape[0])).round().astype(int))
    return frames[idx].astype(np.float32)


def _hull_fill(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Filled convex hull of (row, col) points and its vertices (counter-clockwise)."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points[:, ::-1].astype(np.float64))  # (x, y)
    rows, cols = np.indices(shape)
    xy = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
    inside = np.all(xy @ hull.equations[:, :2].T + hull.equations[:, 2] <= 0.5, axis=1)
    return inside.reshape(shape), hull.points[hull.vertices]


def _apex_from_sides(vertices: np.ndarray, shape: tuple[int, int]) -> tuple[float, float] | None:
    """Intersection of the lines through the two longest hull edges not on the frame border."""
    h, w = shape
    edges = []
    for i in range(len(vertices)):
        p, q = vertices[i], vertices[(i + 1) % len(vertices)]
        on_border = any(
            (abs(p[k] - v) < 0.5 and abs(q[k] - v) < 0.5) for k, v in ((0, 0), (0, w - 1), (1, 0), (1, h - 1))
        )
        if not on_border:
            edges.append((float(np.hypot(*(q - p))), p, q))
    if len(edges) < 2:
        return None
    edges.sort(key=lambda e: -e[0])
    (_, p1, q1), (_, p2, q2) = edges[:2]
    d1, d2 = q1 - p1, q2 - p2
    cross = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(cross) < 1e-6 * np.hypot(*d1) * np.hypot(*d2) or abs(cross) / (np.hypot(*d1) * np.hypot(*d2)) < 0.05:
        return None  # (nearly) parallel: not the two sides of a fan
    t = ((p2[0] - p1[0]) * d2[1] - (p2[1] - p1[1]) * d2[0]) / cross
    x, y = p1 + t * d1
    return float(y), float(x)


def detect_fan(frames: np.ndarray, max_frames: int = 240, black_level: int = 12, active_std: float = 2.0) -> FanRegion:
    """Find the fan in uint8 gray frames ``[F, H, W]`` (see the module docstring). ``ValueError``
    when nothing moves (a still image or fewer than 2 frames)."""
    from scipy import ndimage

    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise ValueError(f"fan detection needs at least 2 frames [F, H, W], got shape {frames.shape}")
    shape = frames.shape[1:]
    sub = _sample(frames, max_frames)
    std = sub.std(axis=0)
    seen = (sub > black_level).mean(axis=0)
    active = ndimage.binary_opening(std > active_std, structure=np.ones((3, 3), bool))
    labels, n = ndimage.label(active)
    if n == 0:
        raise ValueError("no pixel changes over time: no ultrasound fan found (a still image?)")
    sizes = ndimage.sum_labels(np.ones(shape), labels, index=np.arange(1, n + 1))
    component = labels == (1 + int(np.argmax(sizes)))
    if component.sum() < 0.005 * component.size:
        raise ValueError("the moving region is too small to be an ultrasound fan")
    edge = component & ~ndimage.binary_erosion(component)
    hull, vertices = _hull_fill(np.argwhere(edge), shape)
    mask = ndimage.binary_fill_holes(hull & ((seen > 0.02) | component))
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max(), cols.min(), cols.max()
    apex = _apex_from_sides(vertices, shape)
    centre = 0.5 * (y0 + y1)
    if apex is not None:
        side, method = ("top" if apex[0] < centre else "bottom"), "sides"
    else:
        widths = mask[y0:y1 + 1].sum(axis=1).astype(float)
        k = max(1, widths.size // 5)
        side, method = ("top" if widths[:k].mean() < widths[-k:].mean() else "bottom"), "width"
    return FanRegion(mask=mask, bbox=(int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)), apex_side=side,
                     apex=apex, fraction=float(mask.mean()), method=method)


def apply_roi(frames: np.ndarray, roi) -> tuple[np.ndarray, FanRegion | None, tuple[int, int, int, int]]:
    """Crop (and mask) frames to the ultrasound region.

    ``roi``: ``"auto"`` (detect the fan, crop to its box, black out everything outside the mask),
    ``None`` / ``"full"`` (the whole frame), or an explicit ``(x, y, w, h)`` in pixels (crop only).
    Returns ``(frames, fan or None, (x, y, w, h) used)``.
    """
    frames = np.asarray(frames)
    h, w = frames.shape[1:]
    if roi is None or (isinstance(roi, str) and roi == "full"):
        return frames, None, (0, 0, w, h)
    if isinstance(roi, str):
        if roi != "auto":
            raise ValueError(f"roi must be 'auto', 'full', None or (x, y, w, h), got {roi!r}")
        fan = detect_fan(frames)
        x, y, bw, bh = fan.bbox
        crop = frames[:, y:y + bh, x:x + bw] * fan.mask[None, y:y + bh, x:x + bw].astype(frames.dtype)
        return crop, fan, fan.bbox
    box = tuple(int(v) for v in roi)
    if len(box) != 4:
        raise ValueError(f"roi must be (x, y, w, h), got {roi!r}")
    x, y, bw, bh = box
    if bw < 2 or bh < 2 or x < 0 or y < 0 or x + bw > w or y + bh > h:
        raise ValueError(f"roi (x={x}, y={y}, w={bw}, h={bh}) does not fit in frames of {w} x {h}")
    return frames[:, y:y + bh, x:x + bw], None, box


def orient_frames(frames: np.ndarray, probe: str, fan: FanRegion | None) -> tuple[np.ndarray, str]:
    """Flip frames so the probe is at the top (the framework's convention).

    ``probe`` says where the probe is in the given frames: ``"top"`` (kept), ``"bottom"``
    (flipped upside down) or ``"auto"`` (from ``fan.apex_side``; without a detected fan, kept).
    Returns ``(frames, side)`` with the side the probe had.
    """
    if probe not in PROBE_SIDES:
        raise ValueError(f"probe must be one of {', '.join(PROBE_SIDES)}, got {probe!r}")
    side = probe if probe != "auto" else (fan.apex_side if fan is not None else "top")
    return (np.ascontiguousarray(frames[:, ::-1]) if side == "bottom" else frames), side


def fit_frames(frames, size: int | Sequence[int]):
    """Resize ``[F, H, W]`` frames (numpy uint8/float or torch) into ``size`` (int: square) without
    distortion: one scale for both axes (the larger that fits), black padding, horizontally
    centred and top-aligned like FanConverter's renders. Returns the input's type and dtype."""
    import torch
    import torch.nn.functional as F

    out_h, out_w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    is_torch = isinstance(frames, torch.Tensor)
    x = frames if is_torch else torch.from_numpy(np.ascontiguousarray(frames))
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"fit_frames expects frames [F, H, W], got shape {tuple(x.shape)}")
    dtype = x.dtype
    h, w = int(x.shape[1]), int(x.shape[2])
    scale = min(out_h / h, out_w / w)
    new_h, new_w = max(1, min(out_h, round(h * scale))), max(1, min(out_w, round(w * scale)))
    xf = x.float()[:, None]
    if (new_h, new_w) != (h, w):
        xf = F.interpolate(xf, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    out = torch.zeros((x.shape[0], out_h, out_w), dtype=torch.float32, device=x.device)
    left = (out_w - new_w) // 2
    out[:, :new_h, left:left + new_w] = xf[:, 0]
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        out = out.round().clamp(info.min, info.max)
    out = out.to(dtype)
    return out if is_torch else out.numpy()


def write_fan_png(path: str | Path, frame: np.ndarray, fan: FanRegion) -> Path:
    """A PNG of one frame with the detected fan: mask tinted green, its box in yellow, apex in red."""
    from PIL import Image

    path = Path(path)
    gray = np.asarray(frame, dtype=np.float32)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    tint = np.array([40.0, 255.0, 40.0])
    rgb[fan.mask] = 0.6 * rgb[fan.mask] + 0.4 * tint
    rgb[~fan.mask] *= 0.5
    x, y, w, h = fan.bbox
    yellow = np.array([255.0, 220.0, 0.0])
    rgb[y, x:x + w] = rgb[y + h - 1, x:x + w] = yellow
    rgb[y:y + h, x] = rgb[y:y + h, x + w - 1] = yellow
    if fan.apex is not None:
        r, c = int(round(fan.apex[0])), int(round(fan.apex[1]))
        for dr in range(-3, 4):
            for dc in (-3, -2, -1, 0, 1, 2, 3):
                if abs(dr) == abs(dc) and 0 <= r + dr < rgb.shape[0] and 0 <= c + dc < rgb.shape[1]:
                    rgb[r + dr, c + dc] = (255.0, 0.0, 0.0)
    with atomic_path(path) as tmp:
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(tmp, format="PNG")
    return path
