"""What a wav2uti test pass scores beside the model: floors, a ceiling and the tongue-contour measure.

Sources scored on the same clips as the model (``<stage>/<measure>_<source>``; the model has no suffix):

* ``mean_baseline``: the training set's mean frame for every frame;
* ``ridge``: the closed-form ridge probe from the DNN baseline's acoustic input to pixels
  (:class:`articulate.baselines.wav2uti.RidgeProbe`, fitted at fit start on the training clips, its
  penalty chosen on the validation clips);
* ``random_clip``: for each test clip, the real clip of its *partner* (another test utterance, of another
  speaker when there is one; ``datamodules.clips.partner_windows``): what a model that ignores the speech
  scores, however realistic its samples (for RMSE about sqrt(2) x the mean frame's);
* ``oracle``: the true video itself. Its RMSE (0), PSNR (inf) and contour distance to itself (0) are
  trivial and not logged; what is not trivial is the tracker's own error on real frames against the
  true surface (``contour_msd_truth_oracle``), the ceiling of ``contour_msd_truth``.

Contours (with ``contour_ckpt``, a uti2contour checkpoint run by
:class:`articulate.contour.tracker.ContourTracker`; wav2uti frames have the probe at the top, the
tracker flips them to its training orientation and letterboxes them to its input size; keypoints
come back in the frames' pixels): per frame the MSD of :mod:`articulate.metrics.contour` between the
contours through the 11 tongue points, exactly as :class:`~articulate.metrics.contour.ContourMSD`
computes it (same spline, 100 points, the same "found" rule and threshold):

* ``contour_msd``: mode (a), the generated frame and the real frame, both tracked (a frame counts
  when the real one's tongue is found);
* ``contour_msd_truth``: mode (b), the generated frame tracked against the true surface (phantom
  only: the batch's ``true_keypoints``), on the part of the surface inside the fan: tracked points whose
  true position is outside it (NaN) are dropped (:func:`inside`);
* ``contour_found_fraction``: frames whose tongue the tracker finds (mean confidence >= threshold).

``detail_ratio`` (every source): the frame's fine detail (speckle, edges) relative to the real frame's
(:func:`articulate.metrics.functional.detail_ratio`; a real frame of another clip scores about 1, a smooth
prediction well below): a distance to the truth can be bought by drawing the conditional mean, this shows it.

The condition-swap check (test): the model is run a second time on the same clip with the partner's
speech (and transcript) and the same initial noise. ``swap_change`` is the RMSE (0-255) between the two
outputs and ``swap_contour_change`` the MSD (px) between their tracked contours: 0 means the model ignores
its condition. ``swap_change_real`` / ``swap_contour_change_real`` are the same between the two real
clips: what the truth changes when the speech does.

``_mm`` variants multiply by the frames' pixel size when the data knows it. Every value comes from
one table of per-frame rows (:class:`FrameRows`, DDP-exact like the other metrics), which also gives
the per-recording means the reproduction's paired tests use (``Wav2UTIModule.test_per_recording``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from articulate.metrics.contour import msd
from articulate.metrics.dedup import SampleMetric
from articulate.metrics.functional import detail_ratio, psnr, rmse

log = logging.getLogger(__name__)

__all__ = ["FrameRows", "TestScorer", "inside", "load_tracker", "contour_rows", "columns", "summarise", "per_recording", "SOURCES"]

SOURCES = ("model", "mean_baseline", "ridge", "random_clip")
SWAP = ("swap_change", "swap_contour_change")


def load_tracker(path: str):
    """The :class:`~articulate.contour.tracker.ContourTracker` of a uti2contour checkpoint.

    As ``ContourTracker.from_checkpoint``, except that only the tracker's own weights must be finite: a
    checkpoint of ``articulate train uti2contour`` on the phantom also holds the module's ``mean_shape``
    buffer, NaN for the points the phantom has no ground truth for (hyoid, mandible, short tendon), which
    the generic check refuses as a diverged training although the network is sound.
    """
    from articulate.checkpoints import Checkpoint, non_finite
    from articulate.contour.tracker import ContourTracker
    from articulate.errors import InputError
    from articulate.inference.base import inference_class

    ck = Checkpoint.read(path, direction="uti2contour", check_weights=False)
    cls = inference_class(ck)
    if not issubclass(cls, ContourTracker):
        raise InputError(ck.path, f"a {cls.__name__} checkpoint, not a ContourTracker one")
    tracker = cls.from_loaded(ck)
    bad = non_finite(tracker.state_dict())
    if bad:
        raise InputError(ck.path, f"tracker weights hold NaN or infinite values ({', '.join(bad[:3])}): the training "
                                  "that wrote it diverged")
    return tracker.eval()


def columns() -> list[str]:
    """The per-frame columns: recording, pixel size, pixels and contours per source, the oracle."""
    cols = ["utterance", "mm_per_pixel"]
    for s in SOURCES:
        cols += [f"rmse/{s}", f"psnr/{s}", f"contour_msd/{s}", f"found/{s}", f"contour_msd_truth/{s}", f"detail/{s}"]
    cols += ["contour_msd_truth/oracle", "found/oracle"]
    return cols + [f"{m}/{s}" for m in SWAP for s in ("model", "real")]


class FrameRows(SampleMetric):
    """Per-frame rows keyed by (sample_index, frame): :func:`columns` wide."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.names = columns()
        self.width = len(self.names)
        self.index = {n: i for i, n in enumerate(self.names)}

    def update(self, rows: torch.Tensor, sample_index: torch.Tensor | None, frames: int) -> None:
        self._add(rows, sample_index, parts_per_sample=frames)

    def table(self) -> np.ndarray:
        """All ranks' rows ``[N, width]``, de-duplicated and sorted by key."""
        with self.sync_context(should_sync=not self._is_synced, should_unsync=not self._is_synced):
            return self._rows().cpu().numpy()

    def compute(self) -> torch.Tensor:
        return torch.tensor(float(self.num_rows()), dtype=torch.float64)


def contour_rows(pred_kp: np.ndarray, pred_conf: np.ndarray | None, ref_kp: np.ndarray, ref_conf: np.ndarray | None,
                 tongue_points: int, threshold: float, curve_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (MSD px, found) of keypoints ``[N, K, 2]`` against references ``[N, K', 2]``, with
    :class:`~articulate.metrics.contour.ContourMSD`'s rules: the contour through the first
    ``tongue_points`` finite points; found = mean tongue-point confidence >= ``threshold`` (always,
    without confidences); scored only when both contours exist and a tracked reference is found."""
    from articulate.contour.curves import contour_from_keypoints

    n = len(pred_kp)

    def found(conf: np.ndarray | None) -> np.ndarray:
        if conf is None:
            return np.ones(n, dtype=bool)
        return np.nanmean(conf[:, :tongue_points], axis=1) >= threshold

    ok_pred, ok_ref = found(pred_conf), found(ref_conf)
    out = np.full(n, math.nan)
    for i in range(n):
        a = contour_from_keypoints(pred_kp[i, :tongue_points], curve_points)
        r = contour_from_keypoints(ref_kp[i, :tongue_points], curve_points)
        if a is not None and r is not None and ok_ref[i]:
            out[i] = msd(a, r)
    return out, ok_pred.astype(np.float64)


class TestScorer:
    """Builds a batch's rows and turns the stage's rows into logged values and per-recording means."""

    def __init__(self, tracker=None, threshold: float = 0.3, probe: str = "top"):
        self.tracker, self.threshold, self.probe = tracker, float(threshold), probe
        self._mean_track: tuple[np.ndarray, np.ndarray] | None = None

    def track(self, video: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``[B, 1, T, H, W]`` in [-1, 1] -> keypoints ``[B*T, K, 2]`` and confidence ``[B*T, K]`` (numpy)."""
        frames = ((video.float().clamp(-1, 1) + 1) / 2)[:, 0].reshape(-1, *video.shape[-2:])
        kp, conf = self.tracker(frames, probe=self.probe, batch_size=64, progress=False)
        return kp.double().numpy(), conf.double().numpy()

    def rows(self, batch: dict[str, Any], pred: torch.Tensor, real: torch.Tensor,
             floors: dict[str, torch.Tensor], contour: bool, swapped: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``[n * T, width]`` for the first ``n`` clips of a batch (``pred``/``real`` ``[n, 1, T, H, W]``);
        ``swapped``: the model's output for the same clips with their partners' condition (the swap check)."""
        names = columns()
        at = {c: i for i, c in enumerate(names)}
        n, t = real.shape[0], real.shape[2]
        out = np.full((n * t, len(names)), math.nan)
        if "utterance" in batch:
            out[:, at["utterance"]] = np.repeat(batch["utterance"][:n].cpu().numpy(), t)
        if "mm_per_pixel" in batch:
            out[:, at["mm_per_pixel"]] = np.repeat(batch["mm_per_pixel"][:n].double().cpu().numpy(), t)
        videos = {"model": pred, **floors}
        for s, v in videos.items():
            out[:, at[f"rmse/{s}"]] = rmse(v.double(), real.double(), pixel_range="signed").cpu().numpy()
            out[:, at[f"psnr/{s}"]] = psnr(v.double(), real.double(), pixel_range="signed").cpu().numpy()
            out[:, at[f"detail/{s}"]] = detail_ratio(v.double().clamp(-1, 1), real.double()).cpu().numpy()
        pairs = {}  # swap check: (output with its own condition, output with the partner's)
        if swapped is not None:
            pairs["model"] = (pred, swapped)
            if "random_clip" in floors:
                pairs["real"] = (real, floors["random_clip"])
        for s, (a, b) in pairs.items():
            out[:, at[f"swap_change/{s}"]] = rmse(a.double(), b.double(), pixel_range="signed").cpu().numpy()
        if not contour or self.tracker is None:
            return torch.from_numpy(out)
        tongue = int(self.tracker.tongue_points)
        real_kp, real_conf = self.track(real)
        truth = batch.get("true_keypoints")
        truth = truth[:n].double().cpu().numpy().reshape(n * t, *truth.shape[-2:]) if truth is not None else None
        tracks = {"real": (real_kp, real_conf)}
        for s, v in videos.items():
            if s == "mean_baseline":  # one frame repeated: tracked once
                if self._mean_track is None:
                    kp, conf = self.track(v[:1, :, :1])
                    self._mean_track = (kp[0], conf[0])
                kp = np.broadcast_to(self._mean_track[0], (n * t, *self._mean_track[0].shape))
                conf = np.broadcast_to(self._mean_track[1], (n * t, *self._mean_track[1].shape))
            else:
                kp, conf = self.track(v)
            tracks[s] = (kp, conf)
            d, found = contour_rows(kp, conf, real_kp, real_conf, tongue, self.threshold)
            out[:, at[f"contour_msd/{s}"]], out[:, at[f"found/{s}"]] = d, found
            if truth is not None:
                out[:, at[f"contour_msd_truth/{s}"]] = contour_rows(inside(kp, truth), conf, truth, None, tongue,
                                                                    self.threshold)[0]
        if truth is not None:
            out[:, at["contour_msd_truth/oracle"]] = contour_rows(inside(real_kp, truth), real_conf, truth, None, tongue,
                                                                  self.threshold)[0]
        out[:, at["found/oracle"]] = np.nanmean(real_conf[:, :tongue], axis=1) >= self.threshold
        # the contour a swapped condition moves: (own output's track, the partner-conditioned output's track)
        swap_tracks = {"model": lambda: (tracks["model"], self.track(swapped)),
                       "real": lambda: (tracks["real"], tracks["random_clip"])}
        for s in pairs:
            (kp_a, conf_a), (kp_b, conf_b) = swap_tracks[s]()
            out[:, at[f"swap_contour_change/{s}"]] = contour_rows(kp_b, conf_b, kp_a, conf_a, tongue, self.threshold)[0]
        return torch.from_numpy(out)


def inside(kp: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Tracked keypoints ``[N, K, 2]`` without the points whose true position is unknown (NaN: outside the
    fan). The tracker always places every point, extrapolating those it cannot see; compared with a
    truncated true surface they would add their distance to its end (figures: docs/experiments/wav2uti.md,
    2026-12-02)."""
    out = np.array(kp, dtype=np.float64, copy=True)
    k = min(out.shape[1], truth.shape[1])
    out[:, :k][~np.isfinite(truth[:, :k]).all(-1)] = np.nan
    return out


_LABELS = {"found": "contour_found_fraction", "detail": "detail_ratio"}  # logged names of the row columns


def _key(stage: str, measure: str, source: str) -> str:
    return f"{stage}/{measure}" if source == "model" else f"{stage}/{measure}_{source}"


def summarise(rows: np.ndarray, stage: str, with_model_pixels: bool = False) -> dict[str, float]:
    """Logged values of a stage's rows: means over frames (contour MSD: over scored frames); the model's
    RMSE/PSNR only with ``with_model_pixels`` (the module logs them itself); found fractions over all
    frames; absent measures (all NaN) are left out."""
    names = columns()
    at = {c: i for i, c in enumerate(names)}
    out: dict[str, float] = {}
    if not len(rows):
        return out
    mm = rows[:, at["mm_per_pixel"]]
    for name in names[2:]:
        measure, source = name.split("/")
        col = rows[:, at[name]]
        ok = np.isfinite(col) if measure != "psnr" else ~np.isnan(col)  # PSNR may be +inf (identical frames)
        if not ok.any() or (measure in ("rmse", "psnr") and source == "model" and not with_model_pixels):
            continue
        out[_key(stage, _LABELS.get(measure, measure), source)] = float(col[ok].mean())
        if measure.startswith("contour_msd"):
            with_mm = ok & np.isfinite(mm)
            if with_mm.any():
                out[_key(stage, f"{measure}_mm", source)] = float((col[with_mm] * mm[with_mm]).mean())
    return out


def per_recording(rows: np.ndarray, names_of: list[str]) -> dict[str, list]:
    """Per-recording means of every measure (``recording``: the utterance ids, in first-seen order)."""
    cols = columns()
    at = {c: i for i, c in enumerate(cols)}
    if not len(rows):
        return {}
    utt = rows[:, at["utterance"]]
    order = list(dict.fromkeys(int(u) for u in utt[np.isfinite(utt)]))
    out: dict[str, list] = {"recording": [names_of[u] if 0 <= u < len(names_of) else str(u) for u in order],
                            "frames": [int((utt == u).sum()) for u in order]}
    for name in cols[2:]:
        measure, source = name.split("/")
        key = _key("", _LABELS.get(measure, measure), source)[1:]
        col = rows[:, at[name]]
        if not np.isfinite(col).any():
            continue
        vals = []
        for u in order:
            c = col[(utt == u) & np.isfinite(col)]
            vals.append(float(c.mean()) if c.size else None)
        out[key] = vals
    return out
