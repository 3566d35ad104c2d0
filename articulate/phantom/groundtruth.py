"""Ground truth for other work, computed at generation and read back for any image size.

- wav2uti: the tongue's air-facing surface per ultrasound frame, in scan-line polar coordinates
  (fractional scan line, fractional sample; NaN outside the fan): a dense curve of
  :data:`DENSE_POINTS` points evenly spaced (arc length, per frame) from the vallecula to the tip,
  and the 11 DeepLabCut tongue points (:data:`KEYPOINTS`) every tenth of the way.
  :func:`tongue_keypoints` converts them to the pixels of ``FanConverter(params, size)``'s image.
- mri2audio: where moving articulators (tongue, lips, velum, jaw group, larynx) are in every MRI frame,
  and how fast the tissue moves there (mm/s); :func:`motion_region` resamples them to any grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from articulate.phantom import head
from articulate.phantom.anatomy import Subject

KEYPOINTS: tuple[str, ...] = ("vallecula", "tongueRoot1", "tongueRoot2", "tongueBody1", "tongueBody2",
                              "tongueDorsum1", "tongueDorsum2", "tongueBlade1", "tongueBlade2", "tongueTip1",
                              "tongueTip2")
DENSE_POINTS = 101  # keypoint k is dense point 10 k
SPEED_DT_S = 0.01  # central difference for the tissue speed


# --------------------------------------------------------------------------------------------- ultrasound


def _even(curve: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along a polyline [m, 2]."""
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    q = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(q, s, curve[:, 0]), np.interp(q, s, curve[:, 1])], -1)


def surface_polar(states: dict[str, np.ndarray], subject: Subject, num_vectors: int, pix_per_vector: int,
                  angle: float, zero_offset: float, pixels_per_mm: float) -> np.ndarray:
    """Tongue surface per frame in (scan line, sample) coordinates [F, DENSE_POINTS, 2], vallecula -> tip,
    evenly spaced along the deformed surface; NaN where a point is outside the fan.

    The inverse of :func:`articulate.phantom.ultrasound.ray_points`: line i points at
    ``(i - V // 2) * angle + tilt``, sample j lies ``(zero_offset + j) / pixels_per_mm / scale`` mm
    (reference head) from the probe's virtual centre.
    """
    from articulate.phantom.ultrasound import PROBE_REF

    outline = head.tongue_outline()
    apex = PROBE_REF + np.array(subject.probe_shift_mm)
    n = len(next(iter(states.values())))
    out = np.empty((n, DENSE_POINTS, 2), np.float32)
    for k in range(n):
        state = {a: float(v[k]) for a, v in states.items()}
        curve = _even(head.layer_forward(outline, "tongue", state, subject), DENSE_POINTS)  # reference mm
        d = curve - apex
        theta = np.arctan2(-d[:, 0], -d[:, 1]) - np.deg2rad(subject.probe_tilt_deg)
        line = theta / angle + num_vectors // 2
        sample = np.hypot(d[:, 0], d[:, 1]) * subject.scale * pixels_per_mm - zero_offset
        ok = (line >= 0) & (line <= num_vectors - 1) & (sample >= 0) & (sample <= pix_per_vector - 1)
        out[k, :, 0] = np.where(ok, line, np.nan)
        out[k, :, 1] = np.where(ok, sample, np.nan)
    return out


def polar_to_fan(polar: np.ndarray, params, size: tuple[int, int]) -> np.ndarray:
    """(scan line, sample) [..., 2] -> (x = column, y = row) pixels of ``FanConverter(params, size)``'s image."""
    from articulate.readers.ultrasound import FanConverter

    fan = FanConverter(params, size=size)
    theta = (polar[..., 0] - params.num_vectors // 2) * params.angle
    r = params.zero_offset + polar[..., 1]
    rows = r * np.cos(theta) / fan.samples_per_pixel + fan.apex[0]
    cols = r * np.sin(theta) / fan.samples_per_pixel + fan.apex[1]
    return np.stack([cols, rows], -1)


def _traj_path(recording) -> Path:
    """The ``<id>.traj.npz`` of a recording: a Recording, its .ult/.nii.gz/.wav/stem, or the npz itself."""
    from articulate.errors import InputError

    path = Path(getattr(recording, "image", None) or recording)
    if path.name.endswith(".traj.npz"):
        found = path
    else:
        stem = path.name
        for suffix in (".nii.gz", ".ult", ".wav", ".param", ".txt", ".nii", ".npy", ".npz"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        found = path.with_name(stem + ".traj.npz")
    if not found.is_file():
        raise InputError(path, f"no phantom ground truth {found.name} beside it")
    return found


def tongue_keypoints(recording, size: tuple[int, int], dense: bool = False) -> np.ndarray:
    """The true tongue surface of every ultrasound frame of a wav2uti phantom recording, in pixels of
    ``FanConverter(params, size=size)``'s fan image (probe at the top): [F, 11, 2] as (x, y) in
    DeepLabCut order (:data:`KEYPOINTS`, vallecula -> tongue tip), or with ``dense`` the whole
    curve [F, DENSE_POINTS, 2]. NaN where a point lies outside the fan. Frame k is frame k of the
    ``.ult`` (all phantom frames lie inside the audio, so readers keep them all).
    """
    from articulate.errors import InputError
    from articulate.readers.ultrasound import read_param

    path = _traj_path(recording)
    with np.load(path) as z:
        key = "surface_polar" if dense else "keypoints_polar"
        if key not in z.files:
            raise InputError(path, f"has no {key!r} (not a wav2uti phantom recording of version 4 or later)")
        polar = z[key].astype(np.float64)
    params = read_param(path.with_name(path.name[: -len(".traj.npz")] + ".param"))
    return polar_to_fan(polar, params, size)


# --------------------------------------------------------------------------------------------- MRI


def frame_motion(out: dict[str, np.ndarray], before: dict[str, float], after: dict[str, float],
                 subject: Subject) -> tuple[np.ndarray, np.ndarray]:
    """Moving-articulator region (bool) and tissue speed (mm/s, float32) of one :func:`head.render` output.

    The region is where a moving layer (jaw group, tongue, lips, velum) is opaque and not under the
    hard palate or teeth, and, where the states carry a ``larynx`` height, the tissue of the
    larynx-hyoid complex that follows it (from the front of the neck to the spine, below the tongue
    root: :func:`head.larynx_weight` > 0.5); the speed is that of the frontmost tissue at each point
    (0 for static tissue), from the layer's own motion between the states ``SPEED_DT_S`` before and after.
    """
    speed = np.zeros(out["layer"].shape, np.float32)
    for i, layer in enumerate(head.LAYERS):
        m = out["layer"] == i + 1
        if m.any():
            X = out["layer_ref"][m]
            step = head.layer_forward(X, layer, after, subject) - head.layer_forward(X, layer, before, subject)
            speed[m] = np.linalg.norm(step, axis=-1) * subject.scale / (2 * SPEED_DT_S)
    region = out["moving"] > 0.5
    if "larynx" in before and "larynx" in after:
        static = out["layer"] == 0
        X = out["layer_ref"]  # the static tissue's rest coordinates
        w = head.larynx_weight(X)
        step = abs(float(after["larynx"]) - float(before["larynx"]))  # mm of the subject's anatomy
        speed[static] = (w[static] * step / (2 * SPEED_DT_S)).astype(np.float32)
        region = region | (static & (out["tissue"] > 0.5) & (w > 0.5) & (X[..., 0] > head.LARYNX_ZONE_X))
    return region, speed


def _resample(maps: np.ndarray, size: tuple[int, int], frames: int) -> np.ndarray:
    """[T, H, W] -> [frames, *size]: linear in time at frame centres, area (down) or bilinear (up) in space."""
    import torch
    import torch.nn.functional as F

    t_in = maps.shape[0]
    pos = np.clip((np.arange(frames) + 0.5) * t_in / frames - 0.5, 0, t_in - 1)
    i0 = np.minimum(np.floor(pos).astype(int), max(t_in - 2, 0))
    w = (pos - i0)[:, None, None]
    timed = maps[i0] * (1 - w) + maps[np.minimum(i0 + 1, t_in - 1)] * w
    x = torch.from_numpy(np.ascontiguousarray(timed, dtype=np.float32))[:, None]
    down = size[0] <= maps.shape[1] and size[1] <= maps.shape[2]
    x = F.interpolate(x, size=tuple(size), mode="area") if down else F.interpolate(
        x, size=tuple(size), mode="bilinear", align_corners=False)
    return x[:, 0].numpy()


def motion_region(recording, size: tuple[int, int] | None = None, frames: int | None = None,
                  min_speed_mm_s: float | None = None) -> np.ndarray:
    """Where articulators move in a mri2audio phantom recording, float32 [frames, H, W] in [0, 1].

    Without ``min_speed_mm_s``: the moving-articulator region (tongue, lips, velum, jaw group, and
    from version 5 the larynx-hyoid complex);
    with it: the part of the region whose tissue moves at least that fast. Resampled to ``size``
    (default: the MRI grid) and ``frames`` (default: the MRI frames): the fraction of each output
    pixel covered, so it can weigh an attention map of any shape.
    """
    from articulate.errors import InputError

    path = _traj_path(recording)
    with np.load(path) as z:
        if "motion_region" not in z.files:
            raise InputError(path, "has no 'motion_region' (not a mri2audio phantom recording of version 4 or later)")
        region = z["motion_region"].astype(np.float32)
        if min_speed_mm_s is not None:
            region = region * (z["motion_speed"].astype(np.float32) >= float(min_speed_mm_s))
    t, h, w = region.shape
    return _resample(region, tuple(size) if size is not None else (h, w), int(frames) if frames else t)
