"""Clips of ultrasound video with their exactly aligned audio span: the wav2uti DataModule's items.

Clips: ``clip_frames`` consecutive video frames ``[s, s + T)`` and the audio samples
``[round(s sr / fps), +round(T sr / fps))`` they cover (frame i spans ``[i/fps, (i+1)/fps)``), so
the audio span lasts ``T / fps`` s to within one sample. With the phantom, a clip also carries its
frames' true tongue keypoints (``true_keypoints [T, 11, 2]``, pixels of its frames).

Evaluation clips may carry a *partner*: a clip of the same length from another utterance (of another
speaker when the split has one), drawn once per clip from a fixed seed, under ``partner_<key>`` for
every key of its own item. It is what a model that ignores its condition would be worth (the partner's
real video, scored as if it were a prediction) and the condition of the swap check (the same initial
noise sampled with the partner's speech).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from articulate.networks.wav2uti.encoders import context_samples
from datamodules.sampling import item_rng

if TYPE_CHECKING:
    from datamodules.wav2uti import Wav2UTIDataModule

__all__ = ["Utterance", "ClipDataset", "collate_clips"]


@dataclass
class Utterance:
    id: str
    speaker: str
    frames: np.ndarray  # uint8 [F, H, W] at the target fps
    audio: np.ndarray  # float32 [L] at the target sample rate, L ~= F / fps * sr
    text: str
    source: Path | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)  # "audio" [F, D], "text" [L, D]
    part: str | None = None  # the split part of a block of a recording (speaker-dependent time split)
    # The phantom's true tongue surface per frame (11 DLC tongue points, (x, y) px of ``frames``, NaN
    # outside the fan), when the recording has one; and the frames' pixel size (NaN when unknown).
    keypoints: np.ndarray | None = None  # float32 [F, 11, 2]
    mm_per_pixel: float = float("nan")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _span(start: int, clip_frames: int, fps: float, sr: int) -> tuple[int, int]:
    a = int(round(start * sr / fps))
    return a, a + int(round(clip_frames * sr / fps))


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; pad ``text_feats`` to the longest transcript with a validity mask."""
    out: dict[str, Any] = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if key.endswith("text_feats"):  # text_feats and partner_text_feats
            length = max(max(v.shape[0] for v in vals), 1)
            dim = vals[0].shape[1]
            feats = torch.zeros(len(vals), length, dim)
            mask = torch.zeros(len(vals), length, dtype=torch.bool)
            for i, v in enumerate(vals):
                feats[i, : v.shape[0]] = v
                mask[i, : v.shape[0]] = True
            out[key], out[key.replace("text_feats", "text_mask")] = feats, mask
        elif isinstance(vals[0], torch.Tensor):
            out[key] = torch.stack(vals)
        elif isinstance(vals[0], (int, np.integer)):
            out[key] = torch.tensor(vals, dtype=torch.long)
        else:
            out[key] = vals
    return out


class ClipDataset(Dataset):
    """Windows of ``clip_frames`` frames over a list of utterances.

    Training items are indexed by ``(epoch, i)`` keys (``datamodules.sampling.EpochSampler``): the start
    jitter of window i in an epoch comes from ``item_rng(seed, epoch, i)``, never from a global RNG.
    """

    def __init__(self, dm: Wav2UTIDataModule, utt_indices: Sequence[int], hop: int, jitter: bool,
                 max_clips: int | None = None, seed: int = 0, partners: bool = False):
        self.dm, self.jitter, self.hop, self.seed = dm, jitter, hop, int(seed)
        T = dm.clip_frames
        windows = []
        for u in utt_indices:
            n = dm.utterances[u].num_frames
            if n < T:
                continue
            starts = list(range(0, n - T + 1, hop))
            if not jitter and starts[-1] != n - T:
                starts.append(n - T)  # evaluation covers the utterance's last frames too
            windows += [(u, s) for s in starts]
        if max_clips is not None and len(windows) > max_clips:
            # Evenly spread subset (deterministic): every speaker/utterance stays represented.
            idx = np.linspace(0, len(windows) - 1, max_clips).round().astype(int)
            windows = [windows[i] for i in idx]
        self.windows = windows
        self.partners = partner_windows(windows, [dm.utterances[u].speaker for u, _ in windows], self.seed) if partners else None

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, i = key if isinstance(key, tuple) else (0, int(key))
        item = self._item(epoch, i)
        if self.partners is not None and self.partners[i] is not None:
            partner = self._item(epoch, self.partners[i])
            item.update({f"partner_{k}": v for k, v in partner.items() if k not in ("sample_index", "mm_per_pixel")})
        return item

    def _item(self, epoch: int, i: int) -> dict[str, Any]:
        dm = self.dm
        u, s = self.windows[i]
        utt = dm.utterances[u]
        T = dm.clip_frames
        if self.jitter and self.hop > 1:
            s = min(s + int(item_rng(self.seed, epoch, i).integers(0, self.hop)), utt.num_frames - T)
        video = torch.from_numpy(utt.frames[s : s + T].astype(np.float32) / 127.5 - 1.0)[None]
        c = dm.condition_context
        # frames [s - c, s + T + c) of the utterance padded with c frames of silence (pad_context)
        a0, a1 = _span(s, T + 2 * c, dm.fps, dm.sample_rate)
        pad = context_samples(c, dm.sample_rate, dm.fps)
        a0, a1 = a0 - pad, a1 - pad
        audio = utt.audio[max(a0, 0):max(a1, 0)]
        # silence beyond the utterance (and rounding at its end: a sample or two)
        audio = np.pad(audio, (max(0, -a0), a1 - a0 - audio.shape[0] - max(0, -a0)))
        item: dict[str, Any] = {
            "video": video,
            "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            "text": utt.text,
            "speaker": utt.speaker,
            "utterance": u,
            "start": s,
            "sample_index": i,  # dataset index: metrics drop the clips DistributedSampler repeats
        }
        if utt.keypoints is not None and dm.has_keypoints:
            item["true_keypoints"] = torch.from_numpy(np.asarray(utt.keypoints[s : s + T], dtype=np.float32))
        item["mm_per_pixel"] = torch.tensor(float(utt.mm_per_pixel), dtype=torch.float64)
        if "audio" in utt.features:
            item["audio_feats"] = torch.from_numpy(np.asarray(utt.features["audio"][s : s + T + 2 * c], dtype=np.float32))
        if "text" in utt.features:
            item["text_feats"] = torch.from_numpy(np.asarray(utt.features["text"], dtype=np.float32))
        return item


def partner_windows(windows: Sequence[tuple[int, int]], speakers: Sequence[str], seed: int) -> list[int | None]:
    """For each window, one window of another utterance, of another speaker when there is one
    (deterministic: drawn from ``(seed, i)``); None when every window comes from one utterance."""
    utts = np.array([u for u, _ in windows])
    spk = np.array(list(speakers))
    out: list[int | None] = []
    for i, (u, _) in enumerate(windows):
        pool = np.flatnonzero(spk != spk[i])
        if not len(pool):
            pool = np.flatnonzero(utts != u)
        out.append(int(pool[np.random.default_rng([int(seed), 7, i]).integers(len(pool))]) if len(pool) else None)
    return out


def slice_utterance(utt: Utterance, start: int, stop: int, sr: int, fps: float, part: str) -> Utterance:
    """Frames ``[start, stop)`` of an utterance with the audio they cover (a speaker-dependent split's block)."""
    a, b = int(round(start * sr / fps)), int(round(stop * sr / fps))
    kp = None if utt.keypoints is None else utt.keypoints[start:stop]
    return replace(utt, id=f"{utt.id}[{start}:{stop}]", frames=utt.frames[start:stop], audio=utt.audio[a:b],
                   features={}, part=part, keypoints=kp)
