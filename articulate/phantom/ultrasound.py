"""Mid-sagittal ultrasound scan lines from a probe under the chin, rendered from the same head model.

Each scan line is a ray from the probe's virtual centre. Along it: tissue backscatter with
speckle that belongs to the tissue (PSF-imaged scatterers sampled in each layer's own reference
coordinates, so the pattern moves and deforms with the tongue and jaw, and decorrelates slowly as
scatterers move through the slice), a tissue texture that travels the same way, depth attenuation with
partial time-gain compensation, a bright specular echo where the ray first meets air (the tongue
surface) or bone (mandible, hyoid), and the acoustic shadow beyond it with faint reverberation.
Values are log-compressed to 8 bits as scanners store them.

Default geometry (documented choice, small on disk yet like a real micro-convex probe):
64 lines x 256 samples, 0.025 rad between lines (92 degree fan, like TaL's 64 x 0.025),
3 samples per mm (85 mm of depth from 10 mm), 60 frames per second.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, grey_opening

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


# Speckle: complex scatterer fields in each tissue's own coordinates, already imaged through the
# beam's point-spread function there (so a moving tissue shows its own pattern moved, not a new
# one; the beams point up the head, so the PSF is long across x and short along y); two fields
# blended by a slowly advancing "elevation" phase stand for scatterers moving through the slice
# thickness (the decorrelation grows with the tongue's speed); fresh noise only on top.
SCATTER_MM = 0.25  # scatterer-field grid
PSF_MM = (1.2, 0.55)  # beam PSF (Gaussian sigma, mm): lateral (x), axial (y)
ELEV_BASE, ELEV_GAIN = 1.2, 2.5  # elevation phase (rad) per second and per unit of articulator motion
FRESH, NOISE_FLOOR = 0.02, 0.001  # uncorrelated speckle share and electronic noise
ECHO = (0.06, 0.12)  # backscatter of the tongue body and of the other soft tissue
SPECKLE = 0.55  # share of the tissue echo that is speckle (the rest: coherent, unvarying)
LAYER_OFFSET_MM = np.array([37.1, 53.3])  # each layer samples its own part of the field (x layer id)
PROBE_HOLD_MM = 30.0  # jaw-group tissue follows the jaw fully this far from the probe's face


class UltrasoundRenderer:
    """Per-subject renderer (static anatomy, scatterer fields and tissue texture made once)."""

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
        r_mm = (zero_offset + np.arange(0, pix_per_vector, COARSE)) / pixels_per_mm
        self.jaw_follow = np.broadcast_to(np.clip((r_mm - r_mm[0]) / PROBE_HOLD_MM, 0, 1), self.couple.shape)
        self.origin = np.array([20.0, 80.0])
        n = (int(130 / SCATTER_MM), int(140 / SCATTER_MM))
        # two complex scatterer fields (re, im, re, im) seen through the PSF
        psf = (PSF_MM[0] / SCATTER_MM, PSF_MM[1] / SCATTER_MM)
        fields = [gaussian_filter(rng.normal(size=n), psf, mode="wrap") for _ in range(4)]
        # echogenicity texture (muscle fibres, fascia) on a ~2 mm scale
        tex = gaussian_filter(rng.normal(size=n), 2.0 / SCATTER_MM, mode="wrap")
        tex = np.clip(1.0 + 0.35 * tex / tex.std(), 0.3, 2.0)
        power = float(np.sqrt(np.mean(np.stack(fields) ** 2) * 2))  # to unit complex power
        self.field_shape = n
        self.scatter = [((fields[k] + 1j * fields[k + 1]) / power).astype(np.complex64).ravel() for k in (0, 2)]
        self.texture = [tex.astype(np.float32).ravel()]
        self.speckle_rms: float | None = None
        self.depth = np.arange(pix_per_vector) / pixels_per_mm  # mm from the first sample
        self.zero_offset, self.angle, self.pixels_per_mm = zero_offset, angle, pixels_per_mm
        self.density = pixels_per_mm / PIXELS_PER_MM  # widths below are given at the default sampling
        # slowly varying per-line echo strength (surface orientation, probe contact)
        self.line_gain = 1.0 + 0.25 * gaussian_filter(rng.normal(size=num_vectors), 3.0) * 3

    def _sample(self, coords: np.ndarray, fields: list[np.ndarray]) -> list[np.ndarray]:
        """``fields`` at tissue coordinates (mm) [..., 2], bilinear, wrapping at the edges."""
        idx = (coords - self.origin) / SCATTER_MM
        n0, n1 = self.field_shape
        r, c = idx[..., 0], idx[..., 1]
        r0, c0 = np.floor(r), np.floor(c)
        fr, fc = (r - r0).astype(np.float32), (c - c0).astype(np.float32)
        r0, c0 = r0.astype(np.int64) % n0, c0.astype(np.int64) % n1
        r1, c1 = (r0 + 1) % n0, (c0 + 1) % n1
        corners = [(r0 * n1 + c0, (1 - fr) * (1 - fc)), (r0 * n1 + c1, (1 - fr) * fc),
                   (r1 * n1 + c0, fr * (1 - fc)), (r1 * n1 + c1, fr * fc)]
        return [sum(f[i] * w for i, w in corners) for f in fields]

    def _speckle(self, coords: np.ndarray, elevation: float) -> np.ndarray:
        """Speckle envelope (unit RMS) at the samples' tissue coordinates."""
        a, b = self._sample(coords, self.scatter)
        env = np.abs(a * np.float32(np.cos(elevation)) + b * np.float32(np.sin(elevation)))
        if self.speckle_rms is None:  # one normalisation per recording: no frame-to-frame flicker
            self.speckle_rms = float(np.sqrt(np.mean(env**2)))
        return env / self.speckle_rms

    def frame(self, state: dict[str, float], elevation: float = 0.0) -> np.ndarray:
        """One frame of scan lines, uint8 [V, P]; ``elevation`` (rad) advances the out-of-plane speckle."""
        V, P = self.shape
        out = head.render(self.coarse_pts, state, self.subject, static=self.static)
        # upsample the coarse tissue description along each ray to every sample
        fine = np.arange(P) / COARSE
        j0 = np.clip(np.floor(fine).astype(int), 0, out["tissue"].shape[1] - 1)
        j1 = np.clip(j0 + 1, 0, out["tissue"].shape[1] - 1)
        w = fine - np.floor(fine)

        def up(a: np.ndarray) -> np.ndarray:
            return a[:, j0] * (1 - w) + a[:, j1] * w

        air = np.where(self.couple, 0.0, 1.0 - out["tissue"])
        # slivers between layers that merely touch (the tongue's underside on the floor of the mouth)
        # are sublingual tissue, not air: only air thicker than ~3 mm along a ray reflects and shadows
        air = grey_opening(air, size=(1, 3))
        air_f, bone_f, tongue_f = up(air), up(out["bone"]), up(out["tongue"])
        # each tissue's own coordinates (each layer in its own part of the field): its speckle moves with
        # it; the soft tissue under the jaw is pressed onto the probe, so near the probe it stays put
        ref = out["layer_ref"]
        jaw = (out["layer"] == 1)[..., None]
        ref = np.where(jaw, out["ref"] + (ref - out["ref"]) * self.jaw_follow[..., None], ref)
        coords = ref + out["layer"][..., None] * LAYER_OFFSET_MM
        coords_f = np.stack([up(coords[..., 0]), up(coords[..., 1])], -1)
        speck = self._speckle(coords_f, elevation)
        texture = up(self._sample(coords, self.texture)[0])  # smooth: the coarse samples suffice
        fresh = np.abs(self.rng.standard_normal((V, P), dtype=np.float32))  # what no tissue model explains
        speck = (1.0 - FRESH) * (1.0 - SPECKLE + SPECKLE * speck) * texture + FRESH * fresh

        echo = np.where(tongue_f > 0.5, ECHO[0], ECHO[1])  # hypoechoic tongue body, brighter floor of mouth
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
        v += NOISE_FLOOR * np.abs(self.rng.normal(size=v.shape))  # electronic noise floor
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
    # out-of-plane decorrelation: a little per frame, more while the tongue and jaw move
    motion = sum(np.abs(np.diff(states[a], prepend=states[a][:1])) for a in ("jaw", "tb_height", "tb_back",
                                                                                "tt_height"))
    elevation = np.cumsum(ELEV_BASE / fps + ELEV_GAIN * motion)
    frames = np.stack([renderer.frame({a: float(v[k]) for a, v in states.items()}, float(elevation[k]))
                       for k in range(len(times))])
    return frames, times
