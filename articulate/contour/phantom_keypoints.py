"""The phantom's true tongue surface as 11 DLC-style keypoints in fan-image pixels.

TEMPORARY ADAPTER. The phantom is being extended (by its owner) to export per-frame keypoints
itself, as ``articulate.phantom.tongue_keypoints(recording, size=(H, W)) -> [F, 11, 2]``. Until
that lands this module derives them from what a wav2uti phantom recording already stores: the
articulator trajectories and the subject in ``<id>.traj.npz`` and the scan geometry in
``<id>.param``. :func:`tongue_keypoints` is the one function to swap: everything else
(DataModule, metric) calls it through :func:`phantom_tongue_keypoints`, which prefers the
phantom's own function when it exists.

Derivation: for each frame time, the head model's upper tongue contour
(:func:`articulate.phantom.head.tongue_surface`, image mm, tip -> root) is mapped to scan-line
coordinates (inverse of :func:`articulate.phantom.ultrasound.ray_points`: probe centre, tilt,
per-subject scale), then to the pixels of :class:`articulate.readers.ultrasound.FanConverter`'s
image of ``size`` (probe at the top, tongue tip on the right). The part inside the fan is ordered
root -> tip (DLC's order: vallecula first) and resampled to 11 points equally spaced by arc
length. So the keypoints follow DLC's semantics only approximately (the phantom has no
vallecula; its first point is where the visible root surface enters the fan), which is fine for
a ground truth of the contour's position. Frames where less than a quarter of the surface is in
the fan get NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from articulate.contour.curves import resample_polyline
from articulate.errors import InputError

__all__ = ["tongue_keypoints", "phantom_tongue_keypoints", "TONGUE_POINTS"]

TONGUE_POINTS = ("vallecula", "tongueRoot1", "tongueRoot2", "tongueBody1", "tongueBody2", "tongueDorsum1",
                 "tongueDorsum2", "tongueBlade1", "tongueBlade2", "tongueTip1", "tongueTip2")


def _stem(recording) -> Path:
    path = Path(getattr(recording, "param", None) or recording)
    name = path.name
    for suffix in (".traj.npz", ".param", ".ult", ".wav", ".txt"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def tongue_keypoints(recording, size: tuple[int, int] = (128, 128), num_points: int = 11) -> np.ndarray:
    """``[F, num_points, 2]`` (x, y) fan-image pixels of the true upper tongue surface per frame.

    ``recording``: a phantom recording's stem or any of its files (``.traj.npz``, ``.param``, ...)
    or a :class:`articulate.readers.dataset_index.Recording`.
    """
    from articulate.phantom import head, load_subject
    from articulate.phantom.trajectories import load_trajectory
    from articulate.phantom.ultrasound import PROBE_REF
    from articulate.readers.ultrasound import FanConverter, read_param

    stem = _stem(recording)
    traj_path, param_path = stem.with_name(stem.name + ".traj.npz"), stem.with_name(stem.name + ".param")
    for p in (traj_path, param_path):
        if not p.is_file():
            raise InputError(p, "phantom ground truth not found (needs <id>.traj.npz and <id>.param)")
    traj = load_trajectory(traj_path)
    if "frame_times" not in traj.extra:
        raise InputError(traj_path, "no frame_times: not a wav2uti phantom recording")
    subject = load_subject(traj_path)
    params = read_param(param_path)
    conv = FanConverter(params, size=size)
    times = np.asarray(traj.extra["frame_times"], dtype=np.float64)
    states = traj.at(times)
    apex_ref = PROBE_REF + np.array(subject.probe_shift_mm)
    tilt = np.deg2rad(subject.probe_tilt_deg)
    centre = params.num_vectors // 2
    s = conv.samples_per_pixel
    out = np.full((len(times), num_points, 2), np.nan)
    for k in range(len(times)):
        surf = head.tongue_surface({a: float(v[k]) for a, v in states.items()}, subject, n=240)[::-1]  # root -> tip
        ref = head.image_to_reference(surf, subject) - apex_ref
        # ray direction (-sin t, -cos t) at t = (i - V//2) * angle + tilt; radius in reference mm
        theta = np.arctan2(-ref[:, 0], -ref[:, 1])
        r_ref = np.hypot(ref[:, 0], ref[:, 1])
        line = (theta - tilt) / params.angle + centre
        sample = r_ref * subject.scale * params.pixels_per_mm - params.zero_offset
        inside = (line >= 0) & (line <= params.num_vectors - 1) & (sample >= 0) & (sample <= params.pix_per_vector - 1)
        if inside.sum() < 0.25 * len(inside):
            continue
        idx = np.flatnonzero(inside)
        runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
        run = max(runs, key=len)  # the longest visible stretch
        phi = (line[run] - centre) * params.angle
        radius = (params.zero_offset + sample[run]) / s  # fan px
        xy = np.stack([conv.apex[1] + radius * np.sin(phi), conv.apex[0] + radius * np.cos(phi)], -1)
        out[k] = resample_polyline(xy, num_points)
    return out


def phantom_tongue_keypoints(recording, size: tuple[int, int], num_points: int = 11) -> np.ndarray:
    """The phantom's own exporter when it exists (``articulate.phantom.tongue_keypoints``), else ours."""
    import articulate.phantom as phantom

    own = getattr(phantom, "tongue_keypoints", None)
    if own is not None:
        return np.asarray(own(recording, size=size), dtype=np.float64)
    return tongue_keypoints(recording, size=size, num_points=num_points)
