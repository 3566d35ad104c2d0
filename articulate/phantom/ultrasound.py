"""Mid-sagittal ultrasound scan lines from a probe under the chin, rendered from the same head model.

Each scan line is a ray from the probe's virtual centre. Along it: tissue backscatter with
Rayleigh speckle that belongs to the tissue (sampled in the tissue's own reference coordinates,
so it moves with the tongue and decorrelates partly between frames), depth attenuation with
partial time-gain compensation, a bright specular echo where the ray first meets air (the tongue
surface) or bone (mandible, hyoid), and the acoustic shadow beyond it with faint reverberation.
Values are log-compressed to 8 bits as scanners store them.

Default geometry (documented choice, small on disk yet like a real micro-convex probe):
64 lines x 256 samples, 0.025 rad between lines (92 degree fan, like TaL's 64 x 0.025),
3 samples per mm (85 mm of depth from 10 mm), 60 frames per second.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from articulate.phantom import head
from articulate.phantom.anatomy import Subject
from articulate.phantom.trajectories import Trajectory

NUM_VECTORS = 64
PIX_PER_VECTOR = 256
ANGLE = 0.025
ZERO_OFFSET = 30
PIXELS_PER_MM = 3.0
FPS = 60.0
PROBE_REF = np.array([72.0, 190.0])  # virtual centre of the probe under the chin (reference mm)
AIRWAY_MAX_Y = 168.0  # below this (reference mm) gel and skin couple the probe: no air there
COARSE = 4  # the head model is evaluated every COARSE samples, speckle at every sample


def ray_points(subject: Subject, num_vectors: int, pix_per_vector: int, angle: float, zero_offset: float,
               pixels_per_mm: float, step: int = 1) -> np.ndarray:
    """Image-mm positions [V, P/step, 2] of the scan-line samples (line i at (i - V//2) * angle).

    Positive angles point towards the lips, so the tongue tip is on the right of a fan image.
    """
    theta = (np.arange(num_vectors) - num_vectors // 2) * angle + np.deg2rad(subject.probe_tilt_deg)
    r = (zero_offset + np.arange(0, pix_per_vector, step)) / pixels_per_mm / subject.scale
    d = np.stack([-np.sin(theta), -np.cos(theta)], -1)  # up the head, tilted forwards for theta > 0
    apex = PROBE_REF + np.array(subject.probe_shift_mm)
    ref = apex + r[None, :, None] * d[:, None, :]
    return head.reference_to_image(ref, subject)


class UltrasoundRenderer:
    """Per-subject renderer (static anatomy and tissue speckle precomputed once)."""

    def __init__(self, subject: Subject, rng: np.random.Generator, num_vectors: int = NUM_VECTORS,
                 pix_per_vector: int = PIX_PER_VECTOR, angle: float = ANGLE, zero_offset: float = ZERO_OFFSET,
                 pixels_per_mm: float = PIXELS_PER_MM):
        self.subject, self.rng = subject, rng
        self.shape = (num_vectors, pix_per_vector)
        self.coarse_pts = ray_points(subject, num_vectors, pix_per_vector, angle, zero_offset, pixels_per_mm,
                                     COARSE)
        self.static = head.static_maps(self.coarse_pts, subject)
        self.static["roi"] = np.ones_like(self.static["roi"])  # every sample may meet the tongue
        ref = head.image_to_reference(self.coarse_pts, subject)
        self.couple = ref[..., 1] > AIRWAY_MAX_Y
        # complex scatterer field in tissue coordinates (0.25 mm grid over the mouth, PSF-smoothed)
        self.grid_mm, self.origin = 0.25, np.array([20.0, 80.0])
        n = (int(130 / self.grid_mm), int(140 / self.grid_mm))
        z = rng.normal(size=(2,) + n)
        scatter = np.stack([gaussian_filter(c, (2.0, 2.0)) for c in z])
        # the envelope (modulus) of the PSF-smoothed complex field: fully developed Rayleigh speckle
        self.scatter = np.hypot(scatter[0], scatter[1]).astype(np.float32)
        self.scatter /= float(np.sqrt(np.mean(self.scatter**2)))
        self.depth = np.arange(pix_per_vector) / pixels_per_mm  # mm from the first sample
        self.zero_offset, self.angle, self.pixels_per_mm = zero_offset, angle, pixels_per_mm
        self.density = pixels_per_mm / PIXELS_PER_MM  # widths below are given at the default sampling
        # slowly varying per-line echo strength (surface orientation, probe contact)
        self.line_gain = 1.0 + 0.25 * gaussian_filter(rng.normal(size=num_vectors), 3.0) * 3

    def _speckle(self, ref: np.ndarray) -> np.ndarray:
        """Rayleigh speckle: modulus of the complex scatterer field, bilinear, wrapping at the edges."""
        idx = (ref - self.origin) / self.grid_mm
        n0, n1 = self.scatter.shape
        r, c = idx[..., 0], idx[..., 1]
        r0, c0 = np.floor(r), np.floor(c)
        fr, fc = r - r0, c - c0
        r0, c0 = r0.astype(np.int64) % n0, c0.astype(np.int64) % n1
        r1, c1 = (r0 + 1) % n0, (c0 + 1) % n1
        f = self.scatter
        return (f[r0, c0] * (1 - fr) * (1 - fc) + f[r0, c1] * (1 - fr) * fc + f[r1, c0] * fr * (1 - fc)
                + f[r1, c1] * fr * fc)

    def frame(self, state: dict[str, float]) -> np.ndarray:
        """One frame of scan lines, uint8 [V, P]."""
        V, P = self.shape
        out = head.render(self.coarse_pts, state, self.subject, static=self.static)
        # upsample the coarse tissue description along each ray to every sample
        fine = np.arange(P) / COARSE
        def up(a: np.ndarray) -> np.ndarray:
            j0 = np.clip(np.floor(fine).astype(int), 0, a.shape[1] - 1)
            j1 = np.clip(j0 + 1, 0, a.shape[1] - 1)
            w = fine - np.floor(fine)
            return a[:, j0] * (1 - w) + a[:, j1] * w

        air = np.where(self.couple, 0.0, 1.0 - out["tissue"])
        air_f, bone_f, tongue_f = up(air), up(out["bone"]), up(out["tongue"])
        ref_f = np.stack([up(out["ref"][..., 0]), up(out["ref"][..., 1])], -1)
        tref = out["tongue_ref"]
        tref_f = np.stack([up(tref[..., 0]), up(tref[..., 1])], -1)
        # tissue coordinates for the speckle: the tongue's own where the tongue is
        coords = np.where(tongue_f[..., None] > 0.5, tref_f + 500.0, ref_f)
        speck = self._speckle(coords)
        fresh = np.abs(self.rng.standard_normal((V, P), dtype=np.float32))  # out-of-plane decorrelation
        speck = 0.8 * speck + 0.25 * fresh

        echo = np.where(tongue_f > 0.5, 0.08, 0.15)  # hypoechoic tongue body, brighter floor of mouth
        blocker = np.maximum(air_f, bone_f)
        blocked = np.maximum.accumulate(blocker > 0.5, axis=1)
        first = np.argmax(blocker > 0.5, axis=1)
        has = blocked[:, -1]
        j = np.arange(P)[None, :]
        surface = np.where(has[:, None], np.exp(-0.5 * ((j - first[:, None]) / (1.6 * self.density)) ** 2), 0.0)
        # specular reflection: strong where the surface faces the probe, weak where the beam grazes it
        depth_mm = (self.zero_offset + first) / self.pixels_per_mm
        tan_inc = np.gradient(depth_mm) / np.maximum(depth_mm * self.angle, 1e-6)
        incidence = 0.2 + 0.8 / (1.0 + tan_inc**2)
        surface *= (self.line_gain * incidence)[:, None] * (1.0 + 0.3 * (bone_f.max(axis=1, keepdims=True) > 0.5))
        reverb = np.where(has[:, None], 0.12 * np.exp(-0.5 * ((j - 2 * first[:, None] - self.zero_offset) / (3.0 * self.density)) ** 2), 0.0)
        transmission = np.where(blocked, 0.03, 1.0)
        atten = np.exp(-self.depth / 70.0)[None, :]
        v = (echo * speck * transmission + surface * 1.6 + reverb) * atten
        v += 0.005 * np.abs(self.rng.normal(size=v.shape))  # electronic noise floor
        img = np.log1p(40.0 * v) / np.log1p(40.0 * 1.6)
        return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def render_ultrasound(traj: Trajectory, subject: Subject, rng: np.random.Generator, time_first_frame: float,
                      fps: float = FPS, **geometry) -> tuple[np.ndarray, np.ndarray]:
    """Scan lines uint8 [F, V, P] and frame times: frame k is acquired over
    ``time_first_frame + [k, k + 1) / fps`` (rendered at its middle); every frame lies within the audio."""
    n = int(np.floor((traj.duration - time_first_frame) * fps))
    times = time_first_frame + (np.arange(max(n, 0)) + 0.5) / fps
    renderer = UltrasoundRenderer(subject, rng, **geometry)
    states = traj.at(times)
    frames = np.stack([renderer.frame({a: float(v[k]) for a, v in states.items()}) for k in range(len(times))])
    return frames, times
