"""Polar scan lines -> Cartesian fan image (``FanConverter``), the rendering of ``.ult`` ultrasound.

Orientation convention of every ultrasound image the framework sees: the probe at the top centre,
the fan opening downward (scan line index growing to the right). Ultrasound exported as video is
flipped to this convention by :mod:`articulate.readers.fan`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # ultrasound.py imports this module
    from articulate.readers.ultrasound import UltrasoundParams

__all__ = ["FanConverter"]



class FanConverter:
    """Precomputed polar -> Cartesian map from scan lines ``[.., V, P]`` to fan images ``[.., H, W]``.

    Geometry: scan line ``i`` lies at angle ``(i - floor(V/2)) * Angle`` from the probe axis (line
    index grows to the right of the image), sample ``j`` at radius ``ZeroOffset + j`` samples from
    the probe's virtual centre. The probe sits at the top centre and the fan opens downward. The
    output covers the fan's bounding box (symmetric about the probe axis, fan at the top, spare
    rows below) at one scale for both axes, so shapes are not distorted; ``include_apex=True``
    extends it up to the probe centre.

    ``order`` 0 (nearest) and 1 (bilinear) use a sparse weight matrix (numpy) or ``grid_sample``
    (torch, any device, batched); higher spline orders (the UltraSuite tools use 2) go through
    ``scipy.ndimage.map_coordinates`` frame by frame. Pixels outside the fan are 0; ``mask`` marks
    the pixels inside it. ``apex`` is the probe centre in output pixel coordinates (row, col),
    ``samples_per_pixel`` the scale (divide by ``params.pixels_per_mm`` for mm).
    """

    def __init__(
        self,
        params: UltrasoundParams,
        size: tuple[int, int] = (128, 128),
        order: int = 1,
        include_apex: bool = False,
    ) -> None:
        height, width = int(size[0]), int(size[1])
        if height < 2 or width < 2:
            raise ValueError(f"fan image size must be at least 2x2, got {size}")
        if order < 0 or order > 5:
            raise ValueError(f"order must be 0..5, got {order}")
        num_v, num_p = params.num_vectors, params.pix_per_vector
        if num_v < 2 or num_p < 2:
            raise ValueError("a fan needs at least 2 scan lines of at least 2 samples")
        if params.angle <= 0:
            raise ValueError(f"Angle must be positive to draw a fan, got {params.angle}")
        from articulate import validate

        # the pixel grids and maps below (about ten float64 arrays of H x W), refused before numpy tries
        validate.check_memory(10 * 8 * height * width, f"a {height}x{width} fan image")
        self.params, self.size, self.order = params, (height, width), order
        self.num_vectors, self.pix_per_vector = num_v, num_p
        centre = num_v // 2
        r0 = float(params.zero_offset)
        r1 = r0 + num_p - 1
        th0, th1 = -centre * params.angle, (num_v - 1 - centre) * params.angle

        # Bounding box of the fan, from its outline (dense arcs: exact at the ends, and the arc's
        # extreme where it bulges past the ends, e.g. the bottom at theta = 0).
        theta = np.linspace(th0, th1, 2049)
        outline_r = np.concatenate([np.full_like(theta, r0), np.full_like(theta, r1)])
        outline_t = np.concatenate([theta, theta])
        xs, ys = outline_r * np.sin(outline_t), outline_r * np.cos(outline_t)
        half_w = float(np.abs(xs).max())
        y_min, y_max = float(ys.min()), float(ys.max())
        if include_apex:
            y_min = min(y_min, 0.0)
        scale = max(2 * half_w / (width - 1), (y_max - y_min) / (height - 1))
        y_top = y_min  # top-aligned: spare rows, if any, go below the fan
        self.samples_per_pixel = scale
        self.apex = (-y_top / scale, 0.5 * (width - 1))
        self.mm_per_pixel = scale / params.pixels_per_mm if params.pixels_per_mm else None

        rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
        x = (cols - self.apex[1]) * scale
        y = y_top + rows * scale
        radius = np.hypot(x, y)
        line = np.arctan2(x, y) / params.angle + centre  # fractional scan line index
        sample = radius - r0  # fractional sample index
        tol = 1e-6
        self.mask = (line >= -tol) & (line <= num_v - 1 + tol) & (sample >= -tol) & (sample <= num_p - 1 + tol)
        # Polar coordinates of every output pixel (outside ones too) for spline orders and tests.
        self.line_coords = np.clip(line, 0, num_v - 1)
        self.sample_coords = np.clip(sample, 0, num_p - 1)
        self._matrix = self._build_matrix() if order <= 1 else None
        self._grids: dict = {}

    def _build_matrix(self):
        from scipy import sparse

        height, width = self.size
        num_p = self.pix_per_vector
        pix = np.flatnonzero(self.mask)
        li = self.line_coords.ravel()[pix]
        sj = self.sample_coords.ravel()[pix]
        if self.order == 0:
            rows, cols = pix, np.round(li).astype(np.int64) * num_p + np.round(sj).astype(np.int64)
            weights = np.ones(pix.size)
        else:
            i0 = np.clip(np.floor(li).astype(np.int64), 0, self.num_vectors - 2)
            j0 = np.clip(np.floor(sj).astype(np.int64), 0, num_p - 2)
            fi, fj = li - i0, sj - j0
            rows = np.tile(pix, 4)
            cols = np.concatenate([i0 * num_p + j0, i0 * num_p + j0 + 1, (i0 + 1) * num_p + j0, (i0 + 1) * num_p + j0 + 1])
            weights = np.concatenate([(1 - fi) * (1 - fj), (1 - fi) * fj, fi * (1 - fj), fi * fj])
        shape = (height * width, self.num_vectors * num_p)
        return sparse.csr_matrix((weights.astype(np.float32), (rows, cols)), shape=shape)

    def __call__(self, scanlines, chunk: int = 256):
        if hasattr(scanlines, "detach"):
            return self._torch(scanlines)
        arr = np.asarray(scanlines)
        if arr.shape[-2:] != (self.num_vectors, self.pix_per_vector):
            raise ValueError(f"expected scan lines [..., {self.num_vectors}, {self.pix_per_vector}], got {arr.shape}")
        lead = arr.shape[:-2]
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
        flat = arr.reshape(-1, self.num_vectors * self.pix_per_vector)
        from articulate import validate

        validate.check_memory(flat.shape[0] * self.size[0] * self.size[1] * np.dtype(dtype).itemsize,
                              f"{flat.shape[0]} fan images of {self.size[0]}x{self.size[1]}")
        out = np.zeros((flat.shape[0], self.size[0] * self.size[1]), dtype=dtype)
        if self._matrix is not None:
            for start in range(0, flat.shape[0], chunk):
                block = flat[start : start + chunk].astype(np.float32, copy=False)
                out[start : start + chunk] = (self._matrix @ block.T).T
        else:
            from scipy.ndimage import map_coordinates

            pix = np.flatnonzero(self.mask)
            coords = np.stack([self.line_coords.ravel()[pix], self.sample_coords.ravel()[pix]])
            for n in range(flat.shape[0]):
                frame = flat[n].reshape(self.num_vectors, self.pix_per_vector).astype(np.float64)
                out[n, pix] = map_coordinates(frame, coords, order=self.order, mode="nearest")
        return out.reshape(*lead, *self.size)

    def _torch(self, scanlines):
        import torch
        import torch.nn.functional as F

        if tuple(scanlines.shape[-2:]) != (self.num_vectors, self.pix_per_vector):
            raise ValueError(f"expected scan lines [..., {self.num_vectors}, {self.pix_per_vector}], got {tuple(scanlines.shape)}")
        if self.order > 1:  # splines have no torch equivalent: compute on CPU, return on the input's device
            out = self(scanlines.detach().cpu().numpy().astype(np.float32))
            dtype = scanlines.dtype if scanlines.is_floating_point() else torch.float32
            return torch.from_numpy(out).to(device=scanlines.device, dtype=dtype)
        lead = scanlines.shape[:-2]
        x = scanlines if scanlines.is_floating_point() else scanlines.float()
        x = x.reshape(-1, 1, self.num_vectors, self.pix_per_vector)
        key = (x.device, x.dtype)
        if key not in self._grids:
            # grid_sample wants (x=sample, y=line) in [-1, 1] with align_corners=True (corner = centre of
            # the end samples); pixels outside the fan point far outside so zero padding blanks them.
            gx = 2 * self.sample_coords / (self.pix_per_vector - 1) - 1
            gy = 2 * self.line_coords / (self.num_vectors - 1) - 1
            grid = np.stack([gx, gy], axis=-1)
            grid[~self.mask] = -4.0
            self._grids[key] = (
                torch.as_tensor(grid, dtype=x.dtype, device=x.device)[None],
                torch.as_tensor(self.mask, dtype=x.dtype, device=x.device),
            )
        grid, mask = self._grids[key]
        mode = "nearest" if self.order == 0 else "bilinear"
        out = F.grid_sample(x, grid.expand(x.shape[0], -1, -1, -1), mode=mode, padding_mode="zeros", align_corners=True)
        return (out[:, 0] * mask).reshape(*lead, *self.size)
