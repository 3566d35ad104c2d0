"""Tagged cine MRI of the mid-sagittal slice, rendered from the articulator trajectories.

SPAMM tagging modulates the magnetisation with a grid at the first frame; afterwards the grid
is carried by the tissue (each layer's backward map gives the point's position at frame 0, where
the grid is evaluated) and its contrast relaxes towards the untagged image with T1. Magnitude
images carry Rician noise (complex Gaussian noise, then the modulus), as real scanners produce.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from articulate.phantom import head
from articulate.phantom.anatomy import Subject
from articulate.phantom.trajectories import Trajectory

PIXEL_MM = 1.87
SIZE = 128
N_FRAMES = 26


def frame_times(duration_s: float, n_frames: int = N_FRAMES) -> np.ndarray:
    """Centres of ``n_frames`` equal acquisition windows spanning the recording."""
    return (np.arange(n_frames) + 0.5) * duration_s / n_frames


def tag_grid(p_img: np.ndarray, spacing_mm: float, phase_mm: tuple[float, float]) -> np.ndarray:
    """SPAMM grid modulation in [0, 1] (0 on the tag lines), band-limited so it samples cleanly."""
    gx = 1.0 - ((1.0 + np.cos(2 * np.pi * (p_img[..., 0] - phase_mm[0]) / spacing_mm)) / 2.0) ** 3
    gy = 1.0 - ((1.0 + np.cos(2 * np.pi * (p_img[..., 1] - phase_mm[1]) / spacing_mm)) / 2.0) ** 3
    return gx * gy


def _texture(rng: np.random.Generator, n: int = 96, sigma: float = 1.2) -> np.ndarray:
    t = gaussian_filter(rng.normal(0, 1, (n, n)), sigma)
    return t / t.std()


def render_mri(traj: Trajectory, subject: Subject, rng: np.random.Generator, n_frames: int = N_FRAMES,
               size: int = SIZE, pixel_mm: float = PIXEL_MM, tag_spacing_mm: float = 8.5, tag_t1_s: float = 0.85,
               tag_depth: float = 0.8, noise: float = 0.03,
               truth: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames float32 [n_frames, size, size] in [0, 1], frame k at ``frame_times(duration)[k]``.

    With ``truth``: also the moving-articulator region (bool) and the tissue speed (mm/s, float32),
    both [n_frames, size, size] (:func:`articulate.phantom.groundtruth.frame_motion`).
    """
    from articulate.phantom.groundtruth import SPEED_DT_S, frame_motion

    times = frame_times(traj.duration, n_frames)
    states = traj.at(times)
    before, after = traj.at(times - SPEED_DT_S), traj.at(times + SPEED_DT_S)
    region = np.zeros((n_frames, size, size), bool)
    speed = np.zeros((n_frames, size, size), np.float32)
    state0 = {k: float(v[0]) for k, v in states.items()}
    c = (np.arange(size) + 0.5) * pixel_mm + (SIZE * PIXEL_MM - size * pixel_mm) / 2.0
    pts = np.stack(np.meshgrid(c, c, indexing="xy"), -1)  # [H, W, 2] as (x, y) mm; row 0 = top
    tex = _texture(rng)
    fov = 240.0

    def texture_at(ref: np.ndarray) -> np.ndarray:
        idx = np.clip(ref / fov * (tex.shape[0] - 1), 0, tex.shape[0] - 1)
        return map_coordinates(tex, [idx[..., 1].ravel(), idx[..., 0].ravel()], order=1).reshape(ref.shape[:-1])

    rest = head.static_maps(pts, subject)
    frames = np.empty((n_frames, size, size), np.float32)
    for k in range(n_frames):
        state = {a: float(v[k]) for a, v in states.items()}
        static = head.static_maps(pts, subject, state.get("larynx", 0.0), base=rest)
        contrast = tag_depth * np.exp(-times[k] / tag_t1_s)

        def shade(layer: str, ref: np.ndarray, rho: np.ndarray, alpha: np.ndarray, contrast: float = contrast) -> np.ndarray:
            # the grid was laid on the tissue where it was at the first frame
            if layer == "hard":
                p0 = head.reference_to_image(ref, subject)
            elif layer == "static":
                p0 = head.reference_to_image(head.neck_forward(ref, state0.get("larynx", 0.0), subject), subject)
            else:
                p0 = head.reference_to_image(head.layer_forward(ref, layer, state0, subject), subject)
            m = tag_grid(p0, tag_spacing_mm, subject.tag_phase_mm)
            return rho * (1.0 - contrast * (1.0 - m)) * (1.0 + 0.06 * texture_at(ref))

        out = head.render(pts, state, subject, shade, static)
        img = out["value"] * subject.intensity
        re = img + rng.normal(0.0, noise, img.shape)
        im = rng.normal(0.0, noise, img.shape)
        frames[k] = np.sqrt(re * re + im * im)
        if truth:
            region[k], speed[k] = frame_motion(out, {a: float(v[k]) for a, v in before.items()},
                                               {a: float(v[k]) for a, v in after.items()}, subject)
    frames = np.clip(frames / 1.1, 0.0, 1.0)
    return (frames, region, speed) if truth else frames
