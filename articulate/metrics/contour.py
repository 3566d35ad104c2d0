"""Tongue-contour distance: the mean sum of distances (MSD) clinicians and phoneticians use.

For curves A and B, MSD is the mean over A's points of the distance to the nearest point of B,
and the same from B to A, averaged (Jaumard-Hakoun et al.; Wrench & Balch-Tomes 2022 report
0.93 mm for DeepLabCut, 0.96 mm between two human labellers). Here the "nearest point of B" is
the nearest point of B's polyline (point-to-segment distance), so the value does not depend on
how densely B is sampled; A's points are its contour resampled uniformly by arc length.
Contours come from keypoints through :func:`articulate.contour.curves.contour_from_keypoints`.

:class:`ContourMSD` is the torchmetrics metric, DDP-exact like the other metrics here (rows keyed
by ``sample_index``, see :mod:`articulate.metrics.dedup`). What is compared is configurable:

- ``pred_kind="keypoints"``, ``target_kind="keypoints"``: ``[B, (T,) K, 2]`` keypoints (NaN =
  missing), e.g. a contour model against labels, or the phantom's true surface points;
- ``"images"``: frames ``[B, 1, T, H, W]`` / ``[B, T, H, W]`` / ``[B, H, W]`` in [0, 1], tracked by the
  contour model of ``contour_ckpt`` (:class:`articulate.contour.tracker.ContourTracker`). Mode (a)
  real vs generated video: both ``images``; mode (b) phantom: pred ``images`` (generated frames),
  target ``keypoints`` (the true surface).

Per frame it stores ``[msd_px, msd_mm, found, scored]``: ``found`` when the mean confidence of
the predicted tongue points reaches ``threshold`` (keypoints given directly count as found, unless a
``pred_confidence`` is passed); ``scored`` when both curves exist (a tracked reference must itself
be found). ``compute()`` returns the quantity named by ``report`` (``msd_px``, ``msd_mm``,
``found_fraction``); :meth:`ContourMSD.summary` returns all of them.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from articulate.contour.curves import contour_from_keypoints
from articulate.metrics.dedup import SampleMetric

__all__ = ["msd", "point_to_polyline", "keypoint_msd", "ContourMSD"]

Kind = Literal["keypoints", "images"]


def point_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance of every point ``[N, 2]`` to the nearest point of the polyline ``[M, 2]``."""
    p = np.asarray(points, dtype=np.float64)[:, None, :]
    a = np.asarray(polyline, dtype=np.float64)
    if len(a) == 1:
        return np.linalg.norm(p[:, 0] - a[0], axis=1)
    s0, d = a[:-1][None], np.diff(a, axis=0)[None]
    t = np.clip(np.sum((p - s0) * d, -1) / np.maximum(np.sum(d * d, -1), 1e-24), 0.0, 1.0)
    return np.linalg.norm(p - (s0 + t[..., None] * d), axis=-1).min(axis=1)


def msd(curve_a, curve_b) -> float:
    """Mean sum of distances between two curves ``[N, 2]`` and ``[M, 2]`` (any units, same for both)."""
    a = np.asarray(curve_a.detach().cpu() if isinstance(curve_a, torch.Tensor) else curve_a, dtype=np.float64)
    b = np.asarray(curve_b.detach().cpu() if isinstance(curve_b, torch.Tensor) else curve_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != 2 or b.shape[1] != 2 or not len(a) or not len(b):
        raise ValueError(f"curves must be [N, 2] with N > 0, got {a.shape} and {b.shape}")
    return 0.5 * (float(point_to_polyline(a, b).mean()) + float(point_to_polyline(b, a).mean()))


def keypoint_msd(kp_a, kp_b, n: int = 100) -> float:
    """MSD between the contours through two keypoint sets ``[K, 2]``; NaN when either has < 2 points."""
    a, b = contour_from_keypoints(kp_a, n), contour_from_keypoints(kp_b, n)
    return math.nan if a is None or b is None else msd(a, b)


def _frames(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Images as ``[B * T, H, W]`` and (B, T)."""
    if x.ndim == 5:
        if x.shape[1] != 1:
            raise ValueError(f"expected one channel [B, 1, T, H, W], got {tuple(x.shape)}")
        x = x[:, 0]
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"expected frames [B, 1, T, H, W], [B, T, H, W] or [B, H, W], got {tuple(x.shape)}")
    b, t = x.shape[:2]
    return x.reshape(b * t, *x.shape[2:]), b, t


def _keypoints(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[-1] != 2:
        raise ValueError(f"expected keypoints [B, K, 2] or [B, T, K, 2], got {tuple(x.shape)}")
    b, t = x.shape[:2]
    return x.reshape(b * t, *x.shape[2:]), b, t


class ContourMSD(SampleMetric):
    """MSD between predicted and reference tongue contours, in px (and mm), with the found fraction.

    Args:
        pred_kind / target_kind: ``"keypoints"`` or ``"images"`` (see the module docstring).
        contour_ckpt: contour-model checkpoint, needed when either kind is ``images``.
        tongue_points: how many leading keypoints form the contour (DLC's ultrasound model: 11,
            vallecula to tongue tip; the others are hyoid, mandible, short tendon). None = all.
        threshold: mean tongue-point confidence from which a frame counts as "tongue found".
        mm_per_pixel: pixel size of the compared frames (None = px only; a per-sample value can be
            passed to ``update``).
        probe: where the probe is in the frames given ("top" as FanConverter draws them, "bottom"
            as DLC's labelled images); the tracker flips when its training orientation differs.
        report: what ``compute()`` returns: ``msd_px``, ``msd_mm`` or ``found_fraction``.
        curve_points: samples per contour (arc-length uniform).
    """

    higher_is_better = False  # for the MSD; report="found_fraction" is better when higher
    width = 4
    registered_name = "contour_msd"
    default_inputs = ("video_pred", "video_target")  # mode (a): generated vs real video

    def __init__(self, pred_kind: Kind = "keypoints", target_kind: Kind = "keypoints", contour_ckpt: str | None = None,
                 tongue_points: int | None = 11, threshold: float = 0.3, mm_per_pixel: float | None = None,
                 probe: Literal["top", "bottom"] = "top", report: str = "msd_px", curve_points: int = 100,
                 batch_size: int = 32, **kwargs: Any):
        super().__init__(**kwargs)
        for name, kind in (("pred_kind", pred_kind), ("target_kind", target_kind)):
            if kind not in ("keypoints", "images"):
                raise ValueError(f"{name} must be 'keypoints' or 'images', got {kind!r}")
        if report not in ("msd_px", "msd_mm", "found_fraction"):
            raise ValueError(f"report must be msd_px, msd_mm or found_fraction, got {report!r}")
        if "images" in (pred_kind, target_kind) and not contour_ckpt:
            raise ValueError("ContourMSD: comparing images needs contour_ckpt (a uti2contour checkpoint)")
        self.pred_kind, self.target_kind, self.contour_ckpt = pred_kind, target_kind, contour_ckpt
        self.tongue_points, self.threshold, self.mm_per_pixel = tongue_points, float(threshold), mm_per_pixel
        self.probe, self.report, self.curve_points, self.batch_size = probe, report, int(curve_points), int(batch_size)
        self._tracker_box: list = []  # kept out of the module tree: its weights are not metric state

    # ------------------------------------------------------------------ inputs
    def tracker(self):
        if not self._tracker_box:
            from articulate.contour.tracker import ContourTracker

            self._tracker_box.append(ContourTracker.from_checkpoint(self.contour_ckpt, device=self.device))
        tr = self._tracker_box[0]
        tr.to(self.device)
        return tr

    def _side(self, x: torch.Tensor, kind: str, conf: torch.Tensor | None):
        """(keypoints [N, K, 2] numpy, confidence [N, K] numpy or None, B, T)."""
        if kind == "images":
            frames, b, t = _frames(x.detach().float())
            kp, c = self.tracker()(frames, probe=self.probe, batch_size=self.batch_size)
            return kp.cpu().numpy(), c.cpu().numpy(), b, t
        kp, b, t = _keypoints(x.detach())
        c = None if conf is None else conf.detach().reshape(b * t, -1).float().cpu().numpy()
        return kp.double().cpu().numpy(), c, b, t

    def _tongue(self, kp: np.ndarray) -> np.ndarray:
        return kp if self.tongue_points is None else kp[..., : self.tongue_points, :]

    def _found(self, conf: np.ndarray | None, n: int) -> np.ndarray:
        if conf is None:
            return np.ones(n, dtype=bool)
        c = conf if self.tongue_points is None else conf[:, : self.tongue_points]
        return np.nanmean(c, axis=1) >= self.threshold

    def update(self, pred: torch.Tensor, target: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None, pred_confidence: torch.Tensor | None = None,
               target_confidence: torch.Tensor | None = None, mm_per_pixel: torch.Tensor | None = None) -> None:
        pk, pc, b, t = self._side(pred, self.pred_kind, pred_confidence)
        tk, tc, b2, t2 = self._side(target, self.target_kind, target_confidence)
        if (b, t) != (b2, t2):
            raise ValueError(f"pred has {b} x {t} frames, target {b2} x {t2}")
        found = self._found(pc, b * t)
        ref_ok = self._found(tc, b * t)
        if mm_per_pixel is not None:
            mm = torch.as_tensor(mm_per_pixel, dtype=torch.float64).reshape(-1).cpu().numpy()
            mm = np.repeat(mm if mm.size == b else np.full(b, float(mm[0])), t)
        else:
            mm = np.full(b * t, math.nan if self.mm_per_pixel is None else float(self.mm_per_pixel))
        rows = np.full((b * t, 4), math.nan)
        for i in range(b * t):
            a = contour_from_keypoints(self._tongue(pk[i]), self.curve_points)
            r = contour_from_keypoints(self._tongue(tk[i]), self.curve_points)
            scored = a is not None and r is not None and bool(ref_ok[i])
            d = msd(a, r) if scored else math.nan
            rows[i] = (d, d * mm[i], float(found[i]), float(scored))
        self._add(torch.from_numpy(rows), sample_index, valid, parts_per_sample=t)

    # ------------------------------------------------------------------ results
    def summary(self) -> dict[str, float]:
        """``msd_px`` (mean over scored frames), ``msd_px_std``, ``msd_mm`` (frames of known pixel
        size), ``msd_mm_std``, ``found_fraction`` (over all frames), ``frames``, ``scored``."""
        # under DDP, gather every rank's rows first (compute() has already synced when it calls us)
        with self.sync_context(should_sync=not self._is_synced, should_unsync=not self._is_synced):
            rows = self._rows().cpu().numpy()
        out = {"msd_px": math.nan, "msd_px_std": math.nan, "msd_mm": math.nan, "msd_mm_std": math.nan,
               "found_fraction": math.nan, "frames": float(len(rows)), "scored": 0.0}
        if not len(rows):
            return out
        s = rows[:, 3] > 0.5
        out["scored"] = float(s.sum())
        out["found_fraction"] = float(rows[:, 2].mean())
        if s.any():
            out["msd_px"], out["msd_px_std"] = float(rows[s, 0].mean()), float(rows[s, 0].std())
            mm = rows[s, 1][np.isfinite(rows[s, 1])]
            if mm.size:
                out["msd_mm"], out["msd_mm_std"] = float(mm.mean()), float(mm.std())
        return out

    def compute(self) -> torch.Tensor:
        return torch.tensor(self.summary()[self.report], dtype=torch.float64, device=self.device)
