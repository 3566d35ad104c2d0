"""Image geometry shared by training, inference and the baselines: letterboxing and affine warps.

Coordinates are DeepLabCut's (matplotlib's): the centre of the top-left pixel is (0, 0), x to the
right, y down, so a point's coordinates are pixel units of the image it was labelled on. Affine
transforms are 3 x 3 homogeneous matrices ``A`` mapping source points to destination points
(``dst = A @ [x, y, 1]``). Warping samples, for every destination pixel centre, the source at
``A^-1 @ dst`` (bilinear, zeros outside), so a keypoint mapped by ``A`` lands on the same image
feature it marked in the source.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["letterbox", "scale_matrix", "rotation_about", "translation", "apply_affine", "warp_images",
           "flip_vertical_matrix", "clean_borders"]


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def scale_matrix(s: float, centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    cx, cy = centre
    return translation(cx, cy) @ np.diag([s, s, 1.0]) @ translation(-cx, -cy)


def rotation_about(deg: float, centre: tuple[float, float]) -> np.ndarray:
    """Rotation by ``deg`` degrees (counter-clockwise as seen on screen, y down) about ``centre``."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    r = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return translation(*centre) @ r @ translation(-centre[0], -centre[1])


def letterbox(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Resize keeping the aspect ratio and pad (centred) from an image of ``src_hw`` to ``dst_hw``.

    Pixel edges map to pixel edges: ``x' = s (x + 0.5) - 0.5 + pad_x``.
    """
    hs, ws = src_hw
    hd, wd = dst_hw
    s = min(hd / hs, wd / ws)
    ox, oy = 0.5 * (wd - s * ws), 0.5 * (hd - s * hs)
    return np.array([[s, 0.0, 0.5 * s - 0.5 + ox], [0.0, s, 0.5 * s - 0.5 + oy], [0.0, 0.0, 1.0]])


def flip_vertical_matrix(height: int) -> np.ndarray:
    """Upside down (probe at the top <-> probe at the bottom): ``y' = H - 1 - y``."""
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, height - 1.0], [0.0, 0.0, 1.0]])


def apply_affine(points, matrix):
    """Map points ``[..., 2]`` (numpy or torch; NaN stays NaN) by ``matrix [3, 3]`` or ``[B, 3, 3]``
    (then points are ``[B, ..., 2]``)."""
    if isinstance(points, torch.Tensor):
        m = torch.as_tensor(matrix, dtype=points.dtype, device=points.device)
        if m.ndim == 3:
            shape = points.shape
            p = points.reshape(shape[0], -1, 2)
            out = torch.einsum("bij,bnj->bni", m[:, :2, :2], p) + m[:, None, :2, 2]
            return out.reshape(shape)
        return points @ m[:2, :2].T + m[:2, 2]
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim == 3:
        shape = p.shape
        q = p.reshape(shape[0], -1, 2)
        return (np.einsum("bij,bnj->bni", m[:, :2, :2], q) + m[:, None, :2, 2]).reshape(shape)
    return p @ m[:2, :2].T + m[:2, 2]


def _blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, 1, H, W]`` with one sigma per image (0 = unchanged)."""
    if float(sigma.max()) <= 0:
        return images
    radius = int(math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    s = sigma.to(images.dtype).clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (x[None] / s) ** 2)
    k = torch.where(sigma[:, None] > 0, k, (x[None] == 0).to(images.dtype))
    k = k / k.sum(1, keepdim=True)
    b = images.shape[0]
    # grouped convolution: one kernel per image
    y = images.reshape(1, b, *images.shape[2:])
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k[:, None, None, :], groups=b)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=b)
    return y.reshape(images.shape)


def warp_images(images: torch.Tensor, matrices, out_hw: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Warp ``[B, H, W]`` (or ``[B, C, H, W]``) float images by ``matrices [B, 3, 3]`` (source ->
    destination) onto ``out_hw``; bilinear, zeros outside the source.

    Shrinking by more than 2x first blurs the source (sigma = (1/scale - 2) / 2 source pixels):
    bilinear sampling at a 2x step already averages 2 x 2 pixels, beyond that speckle would alias.
    """
    squeeze = images.ndim == 3
    x = images[:, None] if squeeze else images
    b, _, h, w = x.shape
    m = torch.as_tensor(np.array(matrices, dtype=np.float64), device=x.device)  # a copy: inputs may be read-only views
    if m.ndim == 2:
        m = m.expand(b, 3, 3)
    inv = torch.linalg.inv(m)
    if antialias:
        scale = torch.sqrt(torch.abs(torch.linalg.det(m[:, :2, :2])))
        sigma = (0.5 * (1.0 / scale - 2.0)).clamp_min(0.0)
        x = _blur(x, sigma.to(x.dtype)) if x.shape[1] == 1 else torch.cat(
            [_blur(x[:, c:c + 1], sigma.to(x.dtype)) for c in range(x.shape[1])], 1)
    ho, wo = out_hw
    ys, xs = torch.meshgrid(torch.arange(ho, dtype=torch.float64, device=x.device),
                            torch.arange(wo, dtype=torch.float64, device=x.device), indexing="ij")
    dst = torch.stack([xs, ys], -1).reshape(1, -1, 2)
    src = torch.einsum("bij,bnj->bni", inv[:, :2, :2], dst.expand(b, -1, -1)) + inv[:, None, :2, 2]
    gx = (2.0 * src[..., 0] + 1.0) / w - 1.0
    gy = (2.0 * src[..., 1] + 1.0) / h - 1.0
    grid = torch.stack([gx, gy], -1).reshape(b, ho, wo, 2).to(x.dtype)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0] if squeeze else out


def clean_borders(image: np.ndarray, tol: float = 1.0) -> np.ndarray:
    """Black out uniform non-black stripes along the image border (some DLC exports carry a white
    band above the fan): full rows/columns at the edges whose pixels are all equal (within ``tol``;
    pixels of a stripe already blanked across them do not count)."""
    img = np.array(image, copy=True)
    h, w = img.shape[-2:]
    done = np.zeros((h, w), dtype=bool)  # pixels of stripes already blanked

    def strip(axis: int, i: int) -> bool:
        line = img[..., i, :] if axis == 0 else img[..., :, i]
        keep = ~(done[i, :] if axis == 0 else done[:, i])
        vals = line[..., keep]
        if vals.size == 0 or float(vals.max()) - float(vals.min()) > tol or float(vals.max()) <= tol:
            return False
        line[...] = 0  # a view: blanks the stripe in img
        (done[i, :] if axis == 0 else done[:, i])[...] = True
        return True

    changed = True
    while changed:  # a row band and a column band can hide each other: repeat until nothing changes
        changed = False
        for axis, order in ((0, range(h)), (0, range(h - 1, -1, -1)), (1, range(w)), (1, range(w - 1, -1, -1))):
            for i in order:
                if (done[i, :] if axis == 0 else done[:, i]).all():
                    continue
                if not strip(axis, i):
                    break
                changed = True
    return img
