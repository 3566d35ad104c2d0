"""Ultrasound frames with tongue keypoints, split by recording / speaker.

Data:

- ``data_dir``: DeepLabCut labelled data (a folder of ``<recording>/CollectedData_*.csv`` + images,
  i.e. DLC's ``labeled-data/``; :func:`articulate.readers.dlc.read_labelled_data`). Each folder is one
  recording. Folders with images but no labels are skipped (and logged).
- ``data_dir: null``: the wav2uti phantom (generated once, cached): fan images rendered with
  :class:`~articulate.readers.ultrasound.FanConverter` at ``phantom_size`` and the true tongue surface as
  the 11 tongue keypoints (:func:`articulate.phantom.tongue_keypoints`); the
  other DLC points (hyoid, mandible, short tendon) are missing (masked), so the same network and
  config serve both. Every ``phantom_frames.step``-th frame is used, drawn at ``phantom_frames.size``.

Splits (``split``, :class:`HeldOutSpeakers`) hold out whole speakers, so no recording (and no speaker) is in
two parts. The speaker of a recording is its name, or the first group of ``speaker_pattern`` (a regex) when given, e.g.
``'^(.*?)_\\d+$'`` would make ``spk_01`` and ``spk_02`` one speaker. In the shared DLC set every folder
is a different speaker (see docs/ARCHITECTURE.md), so the default is the folder name. Test and
validation speakers are drawn per *family* (the name without its trailing digits / separators:
``TaL_1to80``, ``Ultrax_TD``, ``ArticulateAnonymized``) so the held-out set covers the ultrasound
systems the training set has: ``round(test_fraction * n)`` of each family of at least 3 speakers
(``val_fraction`` likewise, from the rest). ``test_recordings`` / ``val_recordings`` name them
explicitly instead.

Frames are resized keeping the aspect ratio and padded to ``input_size`` (letterbox), and in training
augmented (``augment``, :class:`articulate.contour.augment.UltrasoundAugment`) with one affine warp
for image and keypoints. ``probe`` is the orientation the network sees: DLC's images have the probe at
the bottom; phantom images are flipped to match when ``probe="bottom"``.

Batch keys: ``image [B, 1, H, W]`` in [0, 1]; ``keypoints [B, K, 2]`` (input px, NaN = missing);
``valid [B, K]``; ``orig_keypoints [B, K, 2]`` (pixels of the original image); ``to_input [B, 3, 3]``
(original -> input px); ``mm_per_pixel [B]`` (original px; NaN unknown); ``fan [B, 7]`` (apex x, y,
r_min, r_max, theta_min, theta_max in input px, probe +1 top / -1 bottom; NaN unknown);
``sample_index [B]``; ``recording [B]``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from articulate.contour.augment import FanInImage, UltrasoundAugment
from articulate.contour.fan import Fan, estimate_fan, fan_from_converter
from articulate.contour.geometry import apply_affine, warp_images
from articulate.contour.tracker import input_matrix, prepare_frames
from articulate.errors import InputError
from datamodules.sampling import EpochSampler, ResumableLoader, item_rng, trainer_position

log = logging.getLogger(__name__)

__all__ = ["ContourDataModule", "HeldOutSpeakers", "PhantomFrames", "ContourRecording", "ContourDataset", "family_of",
           "DLC_BODYPARTS"]

DLC_BODYPARTS = ["vallecula", "tongueRoot1", "tongueRoot2", "tongueBody1", "tongueBody2", "tongueDorsum1",
                 "tongueDorsum2", "tongueBlade1", "tongueBlade2", "tongueTip1", "tongueTip2", "hyoid", "mandible",
                 "shortTendon"]


def family_of(name: str) -> str:
    """Recording family: the name without trailing digits and separators (``TaL_1to8003`` -> ``TaL_1to``)."""
    return re.sub(r"[\d_\-. ]+$", "", name) or name


@dataclass(frozen=True)
class HeldOutSpeakers:
    """Which speakers are held out (``data.init_args.split``; see the module docstring).

    Args:
        test_fraction, val_fraction: share of each family's speakers held out.
        test_recordings, val_recordings: explicit held-out recording or speaker names (override the fractions).
        speaker_pattern: regex whose first group is the speaker in a recording name (None: one speaker per recording).
    """

    test_fraction: float = 0.2
    val_fraction: float = 0.1
    test_recordings: list[str] | None = None
    val_recordings: list[str] | None = None
    speaker_pattern: str | None = None


@dataclass(frozen=True)
class PhantomFrames:
    """How the phantom's ultrasound becomes labelled frames (``data_dir: null``): every ``step``-th frame, drawn
    as a fan image of ``size`` [H, W]."""

    step: int = 3
    size: tuple[int, int] = (120, 160)


@dataclass
class ContourRecording:
    name: str
    speaker: str
    frames: np.ndarray  # uint8 [N, H, W]
    keypoints: np.ndarray  # [N, K, 2] original px, NaN missing
    mm_per_pixel: float = math.nan
    fan: Fan | None = None
    frame_names: list[str] | None = None


class ContourDataset(Dataset):
    """One item per frame of the given recordings (augmented when ``augment`` is given)."""

    def __init__(self, recordings: list[ContourRecording], input_size: tuple[int, int], probe: str,
                 augment: UltrasoundAugment | None = None, repeats: int = 1, seed: int = 0):
        self.recordings, self.input_size, self.probe = recordings, tuple(input_size), probe
        self.augment, self.repeats, self.seed = augment, max(1, int(repeats)), int(seed)
        self.index = [(r, i) for r, rec in enumerate(recordings) for i in range(len(rec.frames))]

    def __len__(self) -> int:
        return len(self.index) * self.repeats

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, item = key if isinstance(key, tuple) else (0, int(key))
        r, i = self.index[item % len(self.index)]
        rec = self.recordings[r]
        img = prepare_frames(rec.frames[i:i + 1])[0]  # the same preprocessing as ContourTracker
        base = input_matrix(img.shape, self.input_size)
        m = base
        rng = None
        if self.augment is not None:
            # each item's own stream (seed, epoch, index): every epoch differs, runs are reproducible and
            # a resumed fit draws exactly what the uninterrupted one drew, whatever the workers
            rng = item_rng(self.seed, epoch, item)
            m = self.augment.matrix(rng, self.input_size) @ base
        x = warp_images(img[None], m[None], self.input_size)[0]
        kp_orig = rec.keypoints[i]
        kp = apply_affine(kp_orig, m)
        h, w = self.input_size
        inside = np.isfinite(kp).all(1) & (kp[:, 0] >= -0.5) & (kp[:, 0] <= w - 0.5) & (kp[:, 1] >= -0.5) & (kp[:, 1] <= h - 0.5)
        kp = np.where(inside[:, None], kp, np.nan)
        if self.augment is not None:
            fan = FanInImage.from_fan(rec.fan, m) if rec.fan is not None else None
            x = self.augment.photometric(x, rng, fan, kp)
        fan_vec = np.full(7, np.nan)
        if rec.fan is not None:
            f = FanInImage.from_fan(rec.fan, base)
            fan_vec = np.array([f.apex[0], f.apex[1], f.r_min, f.r_max, f.theta_min, f.theta_max,
                                1.0 if rec.fan.probe == "top" else -1.0])
        return {
            "image": x[None].float(),
            "keypoints": torch.from_numpy(kp).float(),
            "valid": torch.from_numpy(inside),
            "orig_keypoints": torch.from_numpy(kp_orig.astype(np.float64)),
            "to_input": torch.from_numpy(base),
            "mm_per_pixel": torch.tensor(float(rec.mm_per_pixel), dtype=torch.float64),
            "fan": torch.from_numpy(fan_vec),
            "sample_index": item % len(self.index),
            "recording": r,
        }


def _pick(names: Sequence[str], fraction: float, rng: np.random.Generator) -> list[str]:
    n = len(names)
    if n < 3 or fraction <= 0:
        return []
    k = min(n - 1, max(1, int(round(fraction * n))))
    return sorted(rng.choice(sorted(names), size=k, replace=False).tolist())


class ContourDataModule(LightningDataModule):
    """DLC labelled folders (or the phantom) -> letterboxed, augmented frames with keypoints.

    Args:
        data_dir: DLC labelled-data folder; None = the wav2uti phantom.
        input_size: network input [H, W] (letterboxed).
        batch_size, num_workers: loaders.
        split: the held-out speakers (:class:`HeldOutSpeakers`).
        augment: training augmentation (None = off).
        probe: orientation the network sees ("bottom" as DLC's images; phantom images are flipped to it).
        pixel_mm: mm per original-image pixel by recording-name prefix, e.g. ``{TaL_1to80: 0.44}``
            (the longest matching prefix wins; recordings without an entry report px only).
        keypoints: bodyparts (default DLC's 14); labels must have these names.
        train_repeats: passes over the training frames per epoch (fewer, longer epochs).
        phantom: options of the phantom cohort (``subjects``, ...); phantom_frames: its frames (:class:`PhantomFrames`).
        seed: split and augmentation seed.
    """

    def __init__(self, data_dir: str | None = None, input_size: Sequence[int] = (128, 160), batch_size: int = 16,
                 num_workers: int = 0, split: HeldOutSpeakers = HeldOutSpeakers(),
                 augment: UltrasoundAugment | None = None, probe: str = "bottom",
                 pixel_mm: dict[str, float] | None = None, keypoints: list[str] | None = None, train_repeats: int = 1,
                 phantom: dict[str, Any] | None = None, phantom_frames: PhantomFrames = PhantomFrames(), seed: int = 0):
        super().__init__()
        if probe not in ("top", "bottom"):
            raise ValueError(f"probe must be 'top' or 'bottom', got {probe!r}")
        self.data_dir = None if data_dir in (None, "", "null") else Path(data_dir)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.test_fraction, self.val_fraction = float(split.test_fraction), float(split.val_fraction)
        self.test_recordings, self.val_recordings = split.test_recordings, split.val_recordings
        self.speaker_pattern = re.compile(split.speaker_pattern) if split.speaker_pattern else None
        self.augment, self.probe = augment, probe
        self.pixel_mm = dict(pixel_mm or {})
        self.keypoint_names = list(keypoints or DLC_BODYPARTS)
        self.tongue_points = 11
        self.train_repeats = int(train_repeats)
        self.phantom = dict(phantom or {"subjects": 12})
        self.phantom_frame_step = int(phantom_frames.step)
        self.phantom_size = (int(phantom_frames.size[0]), int(phantom_frames.size[1]))
        self.seed = int(seed)
        self.recordings: list[ContourRecording] = []
        self.parts: dict[str, list[int]] = {}
        self.unlabelled: list[Path] = []

    # ------------------------------------------------------------------ loading
    def _speaker(self, name: str) -> str:
        if self.speaker_pattern is not None:
            m = self.speaker_pattern.search(name)
            if m:
                return m.group(1) if m.groups() else m.group(0)
        return name

    def _mm(self, name: str) -> float:
        """Pixel size of a recording: the entry whose key is the longest prefix of its name."""
        keys = [k for k in self.pixel_mm if name.startswith(k)]
        return float(self.pixel_mm[max(keys, key=len)]) if keys else math.nan

    def _load_dlc(self) -> list[ContourRecording]:
        from articulate.readers.dlc import load_gray, read_labelled_data

        folders, self.unlabelled = read_labelled_data(self.data_dir)
        if self.unlabelled:
            log.info("uti2contour: skipping %d folder(s) with images but no labels: %s", len(self.unlabelled),
                     ", ".join(p.name for p in self.unlabelled))
        missing = [b for b in self.keypoint_names if b not in folders[0].bodyparts]
        if missing:
            raise InputError(folders[0].csv_paths[0], f"labels lack the bodyparts {missing}")
        order = [folders[0].bodyparts.index(b) for b in self.keypoint_names]
        out = []
        for f in folders:
            frames = [load_gray(p) for p in f.images]
            if len({fr.shape for fr in frames}) != 1:
                raise InputError(f.folder, "images of one recording differ in size")
            frames = np.stack(frames)
            out.append(ContourRecording(name=f.name, speaker=self._speaker(f.name), frames=frames,
                                        keypoints=f.keypoints[:, order], mm_per_pixel=self._mm(f.name),
                                        fan=estimate_fan(frames.mean(0)), frame_names=[p.name for p in f.images]))
        return out

    def _load_phantom(self) -> list[ContourRecording]:
        from articulate.phantom import ensure_phantom, tongue_keypoints
        from articulate.readers.dataset_index import index_dataset
        from articulate.readers.ultrasound import FanConverter, read_param, read_ult

        root = ensure_phantom("wav2uti", **self.phantom)
        k = len(self.keypoint_names)
        out = []
        for rec in index_dataset(root):
            params = read_param(rec.param)
            conv = FanConverter(params, size=self.phantom_size)
            sel = slice(0, None, self.phantom_frame_step)
            frames = np.clip(np.rint(conv(read_ult(rec.image, params)[sel])), 0, 255).astype(np.uint8)
            kp11 = tongue_keypoints(rec.image, size=self.phantom_size)[sel]  # NaN outside the fan: masked
            kp = np.full((len(frames), k, 2), np.nan)
            kp[:, : kp11.shape[1]] = kp11
            fan = fan_from_converter(conv, "top")
            if self.probe == "bottom":
                frames = frames[:, ::-1].copy()
                kp[..., 1] = (self.phantom_size[0] - 1) - kp[..., 1]
                fan = fan_from_converter(conv, "bottom")
            out.append(ContourRecording(name=rec.id.replace("/", "_"), speaker=str(rec.subject), frames=frames,
                                        keypoints=kp, mm_per_pixel=float(conv.mm_per_pixel or math.nan), fan=fan))
        return out

    # ------------------------------------------------------------------ splitting
    def _split(self) -> dict[str, list[int]]:
        speakers = sorted({r.speaker for r in self.recordings})
        rng = np.random.default_rng(self.seed)

        def named(names: list[str] | None) -> set[str] | None:
            if names is None:
                return None
            known = {r.name: r.speaker for r in self.recordings}
            unknown = [n for n in names if n not in known and n not in speakers]
            if unknown:
                raise InputError(self.data_dir, f"held-out recordings {unknown} are not in the data")
            return {known.get(n, n) for n in names}

        test, val = named(self.test_recordings), named(self.val_recordings)
        families: dict[str, list[str]] = {}
        for s in speakers:
            families.setdefault(family_of(s), []).append(s)
        if test is None:
            test = {s for fam in sorted(families) for s in _pick(families[fam], self.test_fraction, rng)}
        if val is None:
            val = {s for fam in sorted(families) for s in
                   _pick([s for s in families[fam] if s not in test], self.val_fraction, rng)}
        if test & val:
            raise InputError(self.data_dir, f"speakers {sorted(test & val)} are both test and validation")
        parts = {"train": [], "val": [], "test": []}
        for i, r in enumerate(self.recordings):
            parts["test" if r.speaker in test else "val" if r.speaker in val else "train"].append(i)
        if not parts["train"]:
            raise InputError(self.data_dir, "no training recordings left after holding out test/validation speakers")
        if not parts["test"] or not parts["val"]:
            # tiny data: take whole speakers from training rather than run without held-out data
            train_spk = sorted({self.recordings[i].speaker for i in parts["train"]})
            if len(train_spk) < 2:
                raise InputError(self.data_dir, "need at least 2 speakers for a held-out split")
            for part in ("test", "val"):
                if not parts[part] and len(train_spk) > 1:
                    spk = train_spk.pop()
                    moved = [i for i in parts["train"] if self.recordings[i].speaker == spk]
                    parts[part] = moved
                    parts["train"] = [i for i in parts["train"] if i not in moved]
            if not parts["val"]:
                parts["val"] = list(parts["test"])  # only 2 speakers: validate on the test speaker
        return parts

    def setup(self, stage: str | None = None) -> None:
        if self.recordings:
            return
        self.recordings = self._load_dlc() if self.data_dir is not None else self._load_phantom()
        self.parts = self._split()
        spk = {p: sorted({self.recordings[i].speaker for i in idx}) for p, idx in self.parts.items()}
        if set(spk["train"]) & (set(spk["test"]) | set(spk["val"])):
            raise AssertionError("a speaker is in training and in a held-out part")
        log.info("uti2contour split: train %d recordings, val %s, test %s", len(self.parts["train"]),
                 [self.recordings[i].name for i in self.parts["val"]], [self.recordings[i].name for i in self.parts["test"]])

    def part(self, name: str) -> list[ContourRecording]:
        return [self.recordings[i] for i in self.parts[name]]

    def train_keypoints_input(self) -> np.ndarray:
        """Training keypoints in network-input px ``[N, K, 2]`` (for the mean-shape baseline)."""
        out = []
        for r in self.part("train"):
            m = input_matrix(r.frames.shape[1:], self.input_size)
            out.append(apply_affine(r.keypoints, m))
        return np.concatenate(out)

    # ------------------------------------------------------------------ loaders
    def _loader(self, part: str, train: bool) -> DataLoader:
        ds = ContourDataset(self.part(part), self.input_size, self.probe, self.augment if train else None,
                            repeats=self.train_repeats if train else 1, seed=self.seed)
        kw = {"batch_size": self.batch_size, "num_workers": self.num_workers, "persistent_workers": self.num_workers > 0,
              "drop_last": train and len(ds) > self.batch_size}
        if train:
            return ResumableLoader(ds, EpochSampler(ds, seed=self.seed), trainer_position(self), **kw)
        return DataLoader(ds, shuffle=False, **kw)

    @property
    def has_validation(self) -> bool:
        return self.val_fraction > 0 or bool(self.val_recordings)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
