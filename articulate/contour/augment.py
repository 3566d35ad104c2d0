"""Augmentation for ultrasound keypoint training, applied consistently to image and keypoints.

What varies between ultrasound recordings, and so what a tracker must not depend on:

- probe placement and head size: scale, rotation about the probe, translation (one affine map,
  composed with the letterbox resize so the image is interpolated once; keypoints go through the
  same matrix, so a keypoint stays on the image feature it marked);
- machine settings: overall gain, gamma (log-compression curve), time-gain compensation (a gain
  ramp with depth), and a light blur (focus / lateral resolution);
- speckle: multiplicative, spatially correlated Rayleigh-like noise, plus electronic noise;
- probe geometry: the imaging depth (the fan's far edge cut closer) and the field of view (the
  fan's side cut narrower). Crops never cut a labelled point: they stop beyond the outermost
  keypoint (the tongue is still visible in the cropped image).

Geometric parameters are drawn by :meth:`UltrasoundAugment.matrix` (used by the DataModule), the
photometric ones by :meth:`UltrasoundAugment.photometric` on the warped image in [0, 1]. Both
take a ``numpy.random.Generator`` so a worker's stream decides everything (reproducible).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from articulate.contour.geometry import rotation_about, scale_matrix, translation

__all__ = ["UltrasoundAugment", "FanInImage"]


class FanInImage:
    """The fan as seen in a (warped) image: apex (x, y), unit probe axis into the tissue, radii."""

    def __init__(self, apex: np.ndarray, axis: np.ndarray, r_min: float, r_max: float, theta_min: float, theta_max: float):
        self.apex, self.axis = np.asarray(apex, float), np.asarray(axis, float) / np.linalg.norm(axis)
        self.r_min, self.r_max, self.theta_min, self.theta_max = r_min, r_max, theta_min, theta_max

    @classmethod
    def from_fan(cls, fan, matrix: np.ndarray) -> FanInImage:
        a = matrix[:2, :2]
        apex = a @ np.asarray(fan.apex) + matrix[:2, 2]
        s = math.sqrt(abs(np.linalg.det(a)))
        return cls(apex, a @ fan.axis, fan.r_min * s, fan.r_max * s, fan.theta_min, fan.theta_max)

    def polar(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(xy, float) - self.apex
        along = d @ self.axis
        # angles are positive on the image +x side of the axis (as in articulate.contour.fan)
        perp = np.array([-self.axis[1], self.axis[0]])
        across = d @ (perp if perp[0] >= 0 else -perp)
        return np.hypot(along, across), np.arctan2(across, along)


class UltrasoundAugment:
    """Random ultrasound augmentation (see the module docstring). Ranges are inclusive; every
    photometric operation is applied with probability ``p``.

    Args:
        scale: (min, max) zoom factor.
        rotate_deg: maximum absolute rotation (degrees), about the image centre.
        translate: maximum shift as a fraction of the output width / height.
        gain: (min, max) multiplicative gain.
        gamma: (min, max) exponent of the intensity curve.
        tgc: maximum relative gain change from the near to the far end of the depth.
        speckle: maximum strength of the multiplicative speckle (0 = off).
        noise: maximum standard deviation of additive noise (in [0, 1] units).
        blur: maximum Gaussian blur sigma (output px).
        depth_crop: probability of cutting the imaging depth (needs a known fan).
        fan_crop: probability of narrowing the field of view (needs a known fan).
        p: probability of each photometric operation.
    """

    def __init__(self, scale: tuple[float, float] = (0.85, 1.2), rotate_deg: float = 12.0, translate: float = 0.06,
                 gain: tuple[float, float] = (0.7, 1.4), gamma: tuple[float, float] = (0.65, 1.5), tgc: float = 0.4,
                 speckle: float = 0.35, noise: float = 0.03, blur: float = 1.0, depth_crop: float = 0.3,
                 fan_crop: float = 0.3, p: float = 0.5):
        self.scale, self.rotate_deg, self.translate = tuple(scale), float(rotate_deg), float(translate)
        self.gain, self.gamma, self.tgc = tuple(gain), tuple(gamma), float(tgc)
        self.speckle, self.noise, self.blur = float(speckle), float(noise), float(blur)
        self.depth_crop, self.fan_crop, self.p = float(depth_crop), float(fan_crop), float(p)

    # ------------------------------------------------------------------ geometry
    def matrix(self, rng: np.random.Generator, size_hw: tuple[int, int]) -> np.ndarray:
        """A random 3 x 3 map in output-image coordinates (compose it after the letterbox)."""
        h, w = size_hw
        c = (0.5 * (w - 1), 0.5 * (h - 1))
        s = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        rot = rng.uniform(-self.rotate_deg, self.rotate_deg)
        tx, ty = rng.uniform(-self.translate, self.translate, 2) * (w, h)
        return translation(tx, ty) @ rotation_about(rot, c) @ scale_matrix(s, c)

    # ------------------------------------------------------------------ photometric
    def photometric(self, image: torch.Tensor, rng: np.random.Generator, fan: FanInImage | None = None,
                    keypoints: np.ndarray | None = None) -> torch.Tensor:
        """Augment one warped image ``[H, W]`` in [0, 1]; ``fan`` (in this image) enables depth-
        dependent gain and the crops; ``keypoints [K, 2]`` (NaN = missing) limit the crops."""
        x = image.clone()
        h, w = x.shape
        inside = x > (0.5 / 255.0)  # black outside the fan stays black
        yy, xx = np.mgrid[0:h, 0:w]
        pix = np.stack([xx, yy], -1).astype(np.float64)
        r = th = None
        if fan is not None:
            r_np, th_np = fan.polar(pix)
            r, th = torch.from_numpy(r_np).to(x.dtype), torch.from_numpy(th_np).to(x.dtype)
        p = self.p
        if rng.random() < p and self.blur > 0:
            x = _gauss_blur(x, rng.uniform(0.3, self.blur))
        if rng.random() < p and self.speckle > 0:
            x = x * _speckle(h, w, rng, rng.uniform(0.0, self.speckle), x.dtype)
        if rng.random() < p and self.tgc > 0:
            if r is not None:
                depth = ((r - fan.r_min) / max(fan.r_max - fan.r_min, 1e-6)).clamp(0, 1)
            else:
                depth = torch.linspace(0, 1, h, dtype=x.dtype)[:, None].expand(h, w)
            x = x * (1.0 + rng.uniform(-self.tgc, self.tgc) * (depth - 0.5))
        if rng.random() < p:
            x = x * rng.uniform(*self.gain)
        x = x.clamp(0.0, 1.0)
        if rng.random() < p:
            x = x ** rng.uniform(*self.gamma)
        if rng.random() < p and self.noise > 0:
            x = x + torch.from_numpy(rng.normal(0, rng.uniform(0, self.noise), (h, w))).to(x.dtype)
        x = torch.where(inside, x.clamp(0.0, 1.0), torch.zeros_like(x))
        if fan is not None:
            kp = None if keypoints is None else np.asarray(keypoints, float)
            kp = None if kp is None or not np.isfinite(kp).all(1).any() else kp[np.isfinite(kp).all(1)]
            kr, kth = fan.polar(kp) if kp is not None else (np.array([fan.r_min]), np.array([0.0]))
            if rng.random() < self.depth_crop:
                lo = max(float(kr.max()) + 6.0, fan.r_min + 0.5 * (fan.r_max - fan.r_min))
                if lo < fan.r_max:
                    x = torch.where(r > rng.uniform(lo, fan.r_max), torch.zeros_like(x), x)
            if rng.random() < self.fan_crop:
                hi = max(float(kth.max()) + 0.08, 0.6 * fan.theta_max)
                lo = min(float(kth.min()) - 0.08, 0.6 * fan.theta_min)
                cut_hi = rng.uniform(hi, fan.theta_max) if hi < fan.theta_max else fan.theta_max
                cut_lo = rng.uniform(fan.theta_min, lo) if lo > fan.theta_min else fan.theta_min
                x = torch.where((th > cut_hi) | (th < cut_lo), torch.zeros_like(x), x)
        return x


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    rad = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-rad, rad + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = x[None, None]
    y = F.conv2d(F.pad(y, (rad, rad, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, rad, rad), mode="replicate"), k.view(1, 1, -1, 1))
    return y[0, 0]


def _speckle(h: int, w: int, rng: np.random.Generator, strength: float, dtype) -> torch.Tensor:
    """Multiplicative field with mean 1: the envelope of smoothed complex Gaussian noise."""
    z = torch.from_numpy(rng.standard_normal((2, h, w))).to(dtype)
    z = torch.stack([_gauss_blur(z[0], 0.8), _gauss_blur(z[1], 0.8)])
    env = torch.sqrt(z[0] ** 2 + z[1] ** 2)
    env = env / env.mean().clamp_min(1e-6)
    return (1.0 - strength) + strength * env
