"""The items of the mri2audio DataModule: recordings in memory, crops, MRI windows, pairs.

See :mod:`datamodules.mri2audio` for the batch format and the sampling rules; this module holds the
datasets it builds (``TrainCrops``, ``EvalCrops``) and what they share (``CropContext``), without the
DataModule (which holds the trainer and must not be pickled into DataLoader workers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from articulate.signal.crops import crop_starts
from articulate.signal.mel import MelConfig, MelSpectrogram, power_to_unit
from articulate.signal.pitch import PitchTrack


@dataclass
class MRIRecording:
    """One recording held in memory, ready to crop."""

    id: str
    subject: str
    utterance: str
    mri: torch.Tensor  # float32 [frames, size, size] in [0, 1]
    audio: np.ndarray  # float32 [L], L >= crop_samples (zero-padded when shorter)
    n_samples: int  # length before padding
    source: Path | None = None
    motion: torch.Tensor | None = None  # float32 [frames, size, size]: the phantom's moving-articulator region
    pitch: PitchTrack | None = None  # F0 tracked from the audio (the DataModule's ``pitch`` option)


def window_positions(start: float, samples: float, n_samples: int, n_in: int, n_out: int) -> np.ndarray:
    """Fractional input-frame positions of ``n_out`` frames spanning samples ``[start, start + samples)`` of a
    recording of ``n_samples`` samples whose ``n_in`` frames span it in equal windows (frame centres)."""
    centres = float(start) + (np.arange(n_out) + 0.5) * float(samples) / n_out
    return centres / max(int(n_samples), 1) * n_in - 0.5


def resample_frames(x: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    """``x [T, ...]`` read at fractional frame ``positions`` (linear; clamped to the first and last frame)."""
    t = x.shape[0]
    pos = np.clip(np.asarray(positions, np.float64), 0.0, t - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(t - 2, 0))
    w = torch.as_tensor(pos - i0, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    i1 = np.minimum(i0 + 1, t - 1)
    return (x[i0] * (1 - w) + x[i1] * w).contiguous()


@dataclass
class CropContext:
    """What the datasets need, without the DataModule (which holds the trainer and must not be
    pickled into DataLoader workers)."""

    recordings: list[MRIRecording]
    subject_ids: dict[str, int]
    utterance_ids: dict[str, int]
    mel_config: MelConfig
    crop_samples: int
    n_crops: int
    eval_crops: int
    seed: int
    pairs: bool
    same_utterance_prob: float
    partners: dict[int, tuple[list[int], list[int]]]
    mri_window: str = "recording"

    def window(self, rec: MRIRecording, start: int) -> tuple[torch.Tensor, torch.Tensor | None, list[float]]:
        """The MRI frames (and motion region) that go with the crop at ``start``, and the samples they cover."""
        if self.mri_window != "crop":
            return rec.mri, rec.motion, [0.0, float(rec.n_samples)]
        length = self.crop_samples
        t = rec.mri.shape[0]
        pos = window_positions(start, length, rec.n_samples, t, t)
        motion = None if rec.motion is None else resample_frames(rec.motion, pos)
        return resample_frames(rec.mri, pos), motion, [float(start), float(start + length)]

    def random_start(self, rec_index: int, rng: np.random.Generator) -> int:
        """A training crop's start (uniform over the recording)."""
        return int(rng.integers(0, len(self.recordings[rec_index].audio) - self.crop_samples + 1))

    def draw_partner(self, rec_index: int, rng: np.random.Generator) -> tuple[int, bool]:
        """A partner recording of another training subject and whether it says the same utterance."""
        same, diff = self.partners[rec_index]
        want_same = rng.random() < self.same_utterance_prob
        pool, is_same = (same, True) if (want_same and same) or not diff else (diff, False)
        return pool[int(rng.integers(len(pool)))], is_same


class _Items(Dataset):
    """Shared item builder: crop, mel on the unit scale, MRI, ids."""

    def __init__(self, ctx: CropContext, recordings: list[int]):
        self.ctx = ctx
        self.recordings = list(recordings)
        self.mel = MelSpectrogram(ctx.mel_config)

    def crop(self, rec: MRIRecording, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The crop's audio and unit-scale mel ``[1, n_mels, frames of crop_samples]``."""
        audio = torch.from_numpy(rec.audio[start:start + self.ctx.crop_samples])
        with torch.no_grad():
            mel = power_to_unit(self.mel(audio[None])[0], self.ctx.mel_config)
        return audio, mel[None].float()

    def item(self, rec_index: int, start: int, sample_index: int, motion: bool = False) -> dict[str, Any]:
        rec = self.ctx.recordings[rec_index]
        audio, mel = self.crop(rec, start)
        mri, region, span = self.ctx.window(rec, start)
        out = {
            "mri": mri[None], "mel": mel, "audio": audio,
            "subject": self.ctx.subject_ids[rec.subject], "utterance": self.ctx.utterance_ids[rec.utterance],
            "sample_index": sample_index, "crop_start": start, "mri_span": torch.tensor(span, dtype=torch.float64),
        }
        if motion and region is not None:
            out["motion_region"] = region
        out.update(self.pitch(rec, start, mel.shape[-1]))
        return out

    @staticmethod
    def pitch(rec: MRIRecording, start: int, frames: int, suffix: str = "") -> dict[str, torch.Tensor]:
        """``pitch`` / ``voiced`` ``[frames]`` of the crop at ``start`` (nothing without a track)."""
        if rec.pitch is None:
            return {}
        st, voiced = rec.pitch.at(start, frames)
        return {f"pitch{suffix}": torch.from_numpy(st), f"voiced{suffix}": torch.from_numpy(voiced)}


class TrainCrops(_Items):
    """``n_crops`` random crops per recording per epoch; indexed by ``(epoch, i)`` (see the sampler)."""

    def __len__(self) -> int:
        return len(self.recordings) * self.ctx.n_crops

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        epoch, i = key if isinstance(key, tuple) else (0, int(key))
        if not 0 <= i < len(self):
            raise IndexError(i)
        ctx = self.ctx
        rng = np.random.default_rng([ctx.seed, int(epoch), int(i)])
        r = self.recordings[i // ctx.n_crops]
        start = ctx.random_start(r, rng)
        out = self.item(r, start, i, motion=True)
        if ctx.pairs:
            p, same = ctx.draw_partner(r, rng)
            partner = ctx.recordings[p]
            start_p = ctx.random_start(p, rng)
            _, mel_p = self.crop(partner, start_p)
            mri_p, region_p, _ = ctx.window(partner, start_p)
            out.update(mri_pair=mri_p[None], mel_pair=mel_p, same_utterance=bool(same),
                       subject_pair=ctx.subject_ids[partner.subject], utterance_pair=ctx.utterance_ids[partner.utterance])
            out.update(self.pitch(partner, start_p, mel_p.shape[-1], "_pair"))
            if "motion_region" in out and region_p is not None:
                out["motion_region_pair"] = region_p
        return out


class EvalCrops(_Items):
    """``eval_crops`` fixed crops per recording."""

    def __init__(self, ctx: CropContext, recordings: list[int]):
        super().__init__(ctx, recordings)
        self.index = [(r, s) for r in self.recordings
                      for s in crop_starts(len(ctx.recordings[r].audio), ctx.crop_samples, ctx.eval_crops)]
        # the region only when every recording has one (a batch must have the key in all items or none)
        self.motion = bool(self.recordings) and all(ctx.recordings[r].motion is not None for r in self.recordings)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r, start = self.index[i]
        return self.item(r, start, i, motion=self.motion)
