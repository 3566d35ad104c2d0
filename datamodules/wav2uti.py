"""Speech -> ultrasound tongue video clips with their exactly aligned audio span and transcript.

Data: a folder in the UltraSuite/TaL layout (``<speaker>/<id>.{ult,param,wav,txt}``, or a
``manifest.csv``), read through :mod:`articulate.readers` (streams synchronised and trimmed to their
common span). ``data_dir=None`` uses the wav2uti phantom cohort (generated once, cached).

Per utterance, once, in memory: the fan-shaped images at ``resolution`` (uint8, the paper's view;
``view="scanlines"`` resizes the raw scan-line matrix instead), resampled in time to ``fps`` when the
recording has another frame rate, the audio at ``sample_rate`` and the transcript.

Clips (``clips``: :class:`articulate.transforms.clips.ClipGeometry`): ``T = clips.frames`` consecutive video frames
``[s, s + T)`` and the audio samples ``[round(s sr / fps), +round(T sr / fps))`` they cover (frame i spans
``[i/fps, (i+1)/fps)``), so the audio span lasts ``T / fps`` s to within one sample. Training windows start on a
grid of hop ``T // 2`` with a random jitter inside the hop (every start is reachable, each epoch differs);
validation/test windows tile each utterance deterministically with hop ``T``.

Video is scaled from 0..255 to [-1, 1]: EDM's ``sigma_data = 0.25`` is in those units (the paper's).
``setup`` measures the training set's pixel standard deviation (``data_std``) so it can be compared
with sigma_data; the phantom's is reported in the config comments.

Conditions computed by frozen encoders are attached by the LightningModule
(:meth:`Wav2UTIDataModule.attach_features`) and read from the on-disk feature cache; the batch then
carries frame-aligned ``audio_feats [B, T, D]`` and padded ``text_feats [B, L, D]`` + ``text_mask``.

Speech context (``clips.context`` c frames, linked to the model): a clip's ``audio`` covers frames
``[s - c, s + T + c)`` (silence beyond the utterance) and its ``audio_feats`` are ``[T + 2c, D]``, computed
on the utterance padded with c frames of silence (``articulate.networks.wav2uti.encoders.pad_context``).

Batch keys: ``video [B,1,T,H,W]`` float in [-1,1], ``audio [B, L]``, ``text`` (list of str),
``speaker`` (list of str), ``utterance [B]`` (index into ``utterances``), ``start [B]`` (first frame),
``sample_index [B]`` (dataset index, for DDP-exact metrics), ``mm_per_pixel [B]`` (float64, NaN when
unknown), the attached features when present and, on the phantom (every recording with its
``.traj.npz``, fan view), ``true_keypoints [B, T, 11, 2]``: the true tongue surface
(:func:`articulate.phantom.tongue_keypoints`, DLC order, (x, y) pixels of the ``resolution`` fan
images drawn here, probe at the top, NaN outside the fan), resampled in time like the frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from articulate.errors import InputError
from articulate.transforms.clips import ClipGeometry
from articulate.transforms.video import resample_frames
from articulate.utils.settings import as_settings
from datamodules.clips import ClipDataset, Utterance, collate_clips, slice_utterance
from datamodules.sampling import EpochSampler, ResumableLoader, pin_memory, trainer_position

log = logging.getLogger(__name__)

__all__ = ["Wav2UTIDataModule", "Utterance", "collate_clips"]  # Utterance, collate_clips: re-exported from clips


@dataclass(frozen=True)
class SpeakerSplit:
    """How utterances are held out (``data.init_args.split``); the test part of ``kfold``/``loso`` is the DataModule's ``fold``.

    Args:
        kind: "holdout" (``test_subjects`` speakers), "kfold" (``k`` speaker groups) or "loso" (one speaker):
            speaker-disjoint, as in :mod:`datamodules.splits`; or "speaker_dependent": every speaker in every part,
            on different utterances (or contiguous time blocks of long recordings), ``val_fraction`` /
            ``test_fraction`` of each speaker's data, by ``unit`` ("auto": by utterance for speakers with >= 3 of
            them, else by time).
        test_subjects: held-out test speakers of "holdout" (the paper: 4 of 44): a count, a fraction, or their names.
        val_subjects: validation speakers carved from the training speakers (count, fraction, names); 0 = no
            validation (then nothing is selected on validation metrics: ``articulate fit`` monitors the
            training loss).
        k: speaker groups of "kfold".
        seed: the speaker draws (and the training clips' jitter).
    """

    kind: Literal["holdout", "kfold", "loso", "speaker_dependent"] = "holdout"
    test_subjects: int | float | list[str] = 4
    val_subjects: int | float | list[str] = 2
    k: int = 5
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    unit: Literal["auto", "recording", "time"] = "auto"


class Wav2UTIDataModule(LightningDataModule):
    """Speaker-disjoint train/val/test clips of ultrasound video with aligned audio and transcript.

    Args:
        data_dir: dataset folder (UltraSuite/TaL layout or with ``manifest.csv``); None = phantom.
        phantom: options for ``articulate.phantom.ensure_phantom("wav2uti", **phantom)``.
        clips: the clips' frame size, length, frame rate and speech context (:class:`ClipGeometry`; linked to the model).
        sample_rate: audio rate delivered with the clips (16 kHz as the paper and wav2vec 2.0).
        view: "fan" (Cartesian fan images, the paper's view) or "scanlines" (the raw polar matrix).
        split: how utterances are held out (:class:`SpeakerSplit`).
        fold: the test part of ``kfold`` / ``loso``.
        transcript: "prompt" (the recording's ``.txt``), "whisper" (``<id>.whisper.txt`` written by
            ``articulate transcribe``, falling back to the prompt) or "none" (audio-only data).
        max_eval_clips: cap on validation/test clips (evenly spread), None = all.
        batch_size, num_workers: DataLoader settings.
        feature_cache_dir: where frozen encoders' features are cached (None: the project cache).
        video_roi, video_probe: for ultrasound exported as video: the fan's box ("auto": detected, or
            ``[x0, y0, x1, y1]``) and the probe's side ("auto", "top", "bottom").
    """

    def __init__(
        self,
        data_dir: str | None = None,
        phantom: dict[str, Any] | None = None,
        clips: ClipGeometry = ClipGeometry(),
        sample_rate: int = 16000,
        view: str = "fan",
        split: SpeakerSplit = SpeakerSplit(),
        fold: int = 0,
        transcript: str = "prompt",
        max_eval_clips: int | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        feature_cache_dir: str | None = None,
        video_roi: str | list[int] | None = "auto",
        video_probe: str = "auto",
    ):
        super().__init__()
        clips, split = as_settings(ClipGeometry, clips), as_settings(SpeakerSplit, split)
        if view not in ("fan", "scanlines"):
            raise ValueError(f"view must be 'fan' or 'scanlines', got {view!r}")
        if transcript not in ("prompt", "whisper", "none"):
            raise ValueError(f"transcript must be 'prompt', 'whisper' or 'none', got {transcript!r}")
        # Sizes fail here, when the config is read, not inside the fan conversion after the data was indexed.
        for name, value, least in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if int(value) < least:
                raise InputError(None, f"{name} must be at least {least}, got {value}")
        if not float(sample_rate) > 0:
            raise InputError(None, f"sample_rate must be positive, got {sample_rate}")
        self.save_hyperparameters()
        self.hparams["clips"], self.hparams["split"] = asdict(clips), asdict(split)  # grouped settings: their YAML form
        self.data_dir = data_dir
        self.phantom = dict(phantom or {})
        if data_dir is None:  # a bad phantom option fails when the config is read, not after minutes of setup
            from articulate.phantom import check_options

            check_options("wav2uti", self.phantom)
        self.resolution, self.clip_frames = int(clips.resolution), int(clips.frames)
        self.condition_context = int(clips.context)
        self.fps, self.sample_rate, self.view = float(clips.fps), int(sample_rate), view
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.test_subjects, self.val_subjects, self.split_seed = split.test_subjects, split.val_subjects, int(split.seed)
        self.split, self.fold, self.k = split.kind, int(fold), int(split.k)
        self.transcript = transcript
        # training windows start every half clip (with jitter), evaluation windows tile the utterance
        self.train_hop, self.eval_hop = max(1, self.clip_frames // 2), self.clip_frames
        self.max_eval_clips = max_eval_clips
        self.val_fraction, self.test_fraction = float(split.val_fraction), float(split.test_fraction)
        self.split_unit = split.unit
        if self.split not in ("holdout", "kfold", "loso", "speaker_dependent"):
            raise InputError(None, f"split.kind must be 'holdout', 'kfold', 'loso' or 'speaker_dependent', got {self.split!r}")
        if video_probe not in ("auto", "top", "bottom"):
            raise InputError(None, f"video_probe must be 'auto', 'top' or 'bottom', got {video_probe!r}")
        self.video_roi = tuple(video_roi) if isinstance(video_roi, (list, tuple)) else video_roi
        self.video_probe = video_probe
        self.feature_cache_dir = feature_cache_dir
        self.utterances: list[Utterance] = []
        self.splits: dict[str, list[int]] = {}
        self.speakers: dict[str, list[str]] = {}
        self.data_std: float | None = None
        self.has_keypoints = False
        self._attached: tuple = ()

    # ------------------------------------------------------------------------------------------
    # loading

    def root(self) -> Path:
        if self.data_dir is None:
            from articulate.phantom import ensure_phantom

            return Path(ensure_phantom("wav2uti", **self.phantom))
        root = Path(self.data_dir).expanduser()
        if not root.is_dir():
            raise InputError(root, "dataset folder not found")
        return root

    def prepare_data(self) -> None:
        # Generates the phantom once (rank 0 only under DDP; the cohort is written atomically).
        self.root()

    def _records(self, root: Path) -> list:
        from articulate.readers.dataset_index import index_dataset

        recs = [r for r in index_dataset(root) if r.kind == "ultrasound"]
        if not recs:
            raise InputError(root, "no ultrasound recordings (.ult + .param + .wav, or a video with its audio) found")
        return recs

    def _load(self, rec) -> Utterance:
        from articulate.readers.ultrasound import FanConverter, read_utterance

        res = self.resolution
        if rec.image is not None and rec.image.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv"):
            return self._load_video(rec)
        src = rec.image or rec.param or rec.audio
        utt = read_utterance(src, sr=self.sample_rate)
        if self.view == "fan":
            fan = FanConverter(utt.params, size=(res, res), order=1)
            frames = np.asarray(fan(utt.scanlines.astype(np.float32)))
        else:
            x = torch.from_numpy(utt.scanlines.astype(np.float32))[:, None]
            # scan lines [F, V, P] shown with depth downwards: rows = samples along a line.
            frames = F.interpolate(x.transpose(2, 3), size=(res, res), mode="bilinear", align_corners=False)[:, 0].numpy()
        frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
        keypoints = self._true_keypoints(rec, utt) if self.view == "fan" else None
        if abs(utt.params.fps - self.fps) > 1e-6:
            frames = resample_frames(frames, utt.params.fps, self.fps)
            if keypoints is not None:  # the same interpolation in time as the frames (NaN stays NaN)
                keypoints = resample_frames(keypoints, utt.params.fps, self.fps)
        n_samples = int(round(frames.shape[0] * self.sample_rate / self.fps))
        audio = utt.audio[:n_samples]
        text = self._transcript(Path(utt.stem), utt.text)
        mm = fan.mm_per_pixel if self.view == "fan" else None
        return Utterance(id=str(rec.id), speaker=str(rec.subject or utt.speaker), frames=frames, audio=audio,
                         text=text, source=Path(utt.stem), keypoints=keypoints,
                         mm_per_pixel=float(mm) if mm else math.nan)

    def _true_keypoints(self, rec, utt) -> np.ndarray | None:
        """The phantom's true tongue keypoints of the frames kept (``.traj.npz`` beside the recording), in
        the pixels of the fan images drawn here; None for recordings without that ground truth."""
        from articulate.phantom import tongue_keypoints

        stem = Path(utt.stem)
        if rec.image is None or not stem.with_name(stem.name + ".traj.npz").is_file():
            return None
        kp = tongue_keypoints(rec.image, size=(self.resolution, self.resolution))
        start = int(utt.trim.get("frames_dropped_start", 0))  # frames before the audio began were cut
        kp = kp[start:start + utt.scanlines.shape[0]]
        if kp.shape[0] != utt.scanlines.shape[0]:
            log.warning("%s: ground truth for %d of %d frames: not attached", stem, kp.shape[0], utt.scanlines.shape[0])
            return None
        return kp.astype(np.float32)

    def _transcript(self, stem: Path, prompt: str | None) -> str:
        """The prompt, Whisper's transcript (``<stem>.whisper.txt``, else the prompt) or nothing."""
        if self.transcript == "none":
            return ""
        if self.transcript == "whisper":
            w = stem.with_name(stem.name + ".whisper.txt")
            if w.is_file():
                return w.read_text(encoding="utf-8").strip()
        return prompt or ""

    def _load_video(self, rec) -> Utterance:
        """Ultrasound exported as a video: its .wav or in-container audio, synchronised by the .param
        beside it or the container's timestamps, cropped to the detected fan, probe at the top
        (articulate.readers.video_utterance), resized without distortion (fit_frames)."""
        from articulate.readers.fan import fit_frames
        from articulate.readers.video_utterance import read_video_utterance

        utt = read_video_utterance(rec.image, sr=self.sample_rate, audio=rec.audio, param=rec.param,
                                   text=rec.transcript, roi=self.video_roi, probe=self.video_probe)
        frames = fit_frames(utt.frames, self.resolution)
        if abs(utt.fps - self.fps) > 1e-6:
            frames = resample_frames(frames, utt.fps, self.fps)
        n = min(frames.shape[0], int(math.floor(utt.audio.shape[0] / self.sample_rate * self.fps + 1e-9)))
        frames = frames[:n]
        text = self._transcript(Path(rec.image).with_suffix(""), utt.text)
        return Utterance(id=str(rec.id), speaker=str(rec.subject), frames=frames,
                         audio=utt.audio[: int(round(n * self.sample_rate / self.fps))], text=text, source=rec.image)

    def _split_speakers(self, speakers: list[str]) -> dict[str, list[str]]:
        """Speaker-disjoint {"train", "val", "test"} speaker lists (datamodules.splits)."""
        from datamodules.splits import make_split

        if isinstance(self.test_subjects, (list, tuple)) or isinstance(self.val_subjects, (list, tuple)):
            # Named speakers: exactly those (a count for the other part is drawn from the rest).
            pool = list(speakers)
            out: dict[str, list[str]] = {}
            for part, spec in (("test", self.test_subjects), ("val", self.val_subjects)):
                if isinstance(spec, (list, tuple)):
                    missing = sorted(set(map(str, spec)) - set(pool))
                    if missing:
                        raise InputError(self.data_dir, f"{part} speakers {missing} are not in the dataset (or in two parts)")
                    out[part] = sorted(map(str, spec))
                else:
                    rng = np.random.default_rng(self.split_seed + (part == "val"))
                    n = int(spec)
                    if n >= len(pool):
                        raise InputError(self.data_dir, f"cannot hold out {n} {part} speakers of {len(pool)} left")
                    out[part] = sorted(rng.choice(pool, size=n, replace=False).tolist()) if n else []
                pool = [p for p in pool if p not in out[part]]
            out["train"] = sorted(pool)
            return out
        sp = make_split(speakers, split=self.split, fold=self.fold, k=self.k, val_subjects=self.val_subjects,
                        test_subjects=self.test_subjects, seed=self.split_seed)
        return {"train": sp.train_subjects, "val": sp.val_subjects, "test": sp.test_subjects}

    def setup(self, stage: str | None = None) -> None:
        if self.utterances:
            return
        root = self.root()
        recs = self._records(root)
        log.info("Wav2UTIDataModule: %s split", self.split_name)
        if self.split == "speaker_dependent":
            self._setup_speaker_dependent(root, recs)
            return
        try:
            self.speakers = self._split_speakers([str(r.subject) for r in recs])
        except InputError as err:
            if err.path is not None:
                raise
            names = sorted({str(r.subject) for r in recs})
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise InputError(root, f"{err.problem} (speakers: {shown}). The split is speaker-disjoint: lower "
                                   "--data.init_args.split.test_subjects / --data.init_args.split.val_subjects, or use "
                                   "--data.init_args.split.kind speaker_dependent (different utterances of the same "
                                   "speakers), or add speakers") from None
        by_split: dict[str, list] = {k: [r for r in recs if str(r.subject) in set(v)] for k, v in self.speakers.items()}
        for name, rs in by_split.items():
            rs = sorted(rs, key=lambda r: (str(r.subject), str(r.id)))
            idx = []
            for r in rs:
                utt = self._load(r)
                if utt.num_frames < self.clip_frames:
                    log.warning("%s: %d frames at %g fps, shorter than one clip of %d frames: skipped",
                                utt.source, utt.num_frames, self.fps, self.clip_frames)
                    continue
                idx.append(len(self.utterances))
                self.utterances.append(utt)
            self.splits[name] = idx
        self._finish_setup(root)

    def _finish_setup(self, root: Path) -> None:
        # True keypoints go into batches only when every clip can carry them (a batch stacks them).
        self.has_keypoints = bool(self.utterances) and all(u.keypoints is not None for u in self.utterances)
        if not self.splits.get("train"):
            raise InputError(root, f"no training utterance of at least {self.clip_frames} frames")
        train_pix = np.concatenate([self.utterances[i].frames.reshape(-1)[::97] for i in self.splits["train"]])
        self.data_std = float((train_pix.astype(np.float32) / 127.5 - 1.0).std())
        if self._attached:
            self.attach_features(*self._attached)

    def _setup_speaker_dependent(self, root: Path, recs: list) -> None:
        """Every speaker in every part: whole utterances, or contiguous blocks of long ones (no overlap)."""
        from datamodules.splits import speaker_dependent_split

        recs = sorted(recs, key=lambda r: (str(r.subject), str(r.id)))
        loaded = [self._load(r) for r in recs]
        parts = speaker_dependent_split([u.speaker for u in loaded], [u.num_frames for u in loaded],
                                        self.val_fraction, self.test_fraction, self.split_unit, self.split_seed,
                                        min_length=self.clip_frames)
        self.splits = {name: [] for name in parts}
        for name, spans in parts.items():
            for span in spans:
                utt = loaded[span.index]
                if span.stop is not None:
                    utt = slice_utterance(utt, span.start, span.stop, self.sample_rate, self.fps, name)
                if utt.num_frames < self.clip_frames:
                    continue
                self.splits[name].append(len(self.utterances))
                self.utterances.append(utt)
        self.speakers = {name: sorted({self.utterances[i].speaker for i in idx}) for name, idx in self.splits.items()}
        self._finish_setup(root)

    @property
    def split_name(self) -> str:
        """The split as logs and tables name it."""
        from datamodules.splits import describe_split

        return describe_split(self.split, unit=self.split_unit, val_fraction=self.val_fraction,
                              test_fraction=self.test_fraction)

    # ------------------------------------------------------------------------------------------
    # frozen-encoder features

    def attach_features(
        self,
        audio_fn: Callable[[np.ndarray, int], np.ndarray] | None = None,
        audio_key: str | None = None,
        text_fn: Callable[[str], np.ndarray] | None = None,
        text_key: str | None = None,
        compute: bool = True,
    ) -> dict[str, int]:
        """Attach cached features of frozen encoders to every utterance.

        ``audio_fn(audio [L], n_frames) -> [n_frames, D]`` and ``text_fn(text) -> [L_tok, D]`` compute
        a missing entry (only when ``compute``; else a missing entry is an error), keyed by
        ``audio_key``/``text_key`` (the encoders' ``cache_key()``) and the content. Returns hit/miss
        counts.
        """
        from articulate.features import FeatureCache, array_content_key, text_content_key
        from articulate.networks.wav2uti.encoders import pad_context

        self._attached = (audio_fn, audio_key, text_fn, text_key, compute)
        cache = FeatureCache(self.feature_cache_dir)
        c = self.condition_context
        for utt in self.utterances:
            if audio_fn is not None:
                # features of frames [-c, F + c): the utterance with c frames of silence on each side
                audio = pad_context(utt.audio, c, self.sample_rate, self.fps)
                ck = array_content_key(audio, self.sample_rate, utt.num_frames + 2 * c, self.fps)
                if compute:
                    utt.features["audio"] = cache.get_or_compute(
                        audio_key, ck, lambda a=audio, u=utt: audio_fn(a, u.num_frames + 2 * c))
                else:
                    got = cache.get(audio_key, ck)
                    if got is None:
                        raise RuntimeError(f"audio features of {utt.source} missing from the cache {cache.root}")
                    utt.features["audio"] = got
            if text_fn is not None:
                ck = text_content_key(utt.text)
                utt.features["text"] = (cache.get_or_compute(text_key, ck, lambda u=utt: text_fn(u.text)) if compute
                                        else cache.get(text_key, ck))
        return {"hits": cache.hits, "misses": cache.misses}

    # ------------------------------------------------------------------------------------------
    # loaders

    def dataset(self, split: str) -> ClipDataset:
        if split == "train":
            return ClipDataset(self, self.splits["train"], self.train_hop, jitter=True, seed=self.split_seed)
        return ClipDataset(self, self.splits[split], self.eval_hop, jitter=False, max_clips=self.max_eval_clips,
                           seed=self.split_seed, partners=split == "test")

    def baseline_clips(self, split: str) -> ClipDataset:
        """Deterministic clips for fitting the table's floors (``articulate.baselines.wav2uti``): every
        training clip, tiled with hop ``clip_frames`` (``"train"``), or the evaluation clips of a split."""
        if split == "train":
            return ClipDataset(self, self.splits["train"], self.clip_frames, jitter=False)
        return ClipDataset(self, self.splits.get(split, []), self.eval_hop, jitter=False, max_clips=self.max_eval_clips)

    @property
    def probe(self) -> str | None:
        """Where the probe is in the frames: "top" for fan images (and fan-cropped videos); None for the
        scan-line view, which is no image of the anatomy (contour tracking does not apply)."""
        return "top" if self.view == "fan" else None

    def _loader_kwargs(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "num_workers": self.num_workers, "collate_fn": collate_clips,
                "drop_last": False, "persistent_workers": self.num_workers > 0, "pin_memory": pin_memory(self)}

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        return ResumableLoader(ds, EpochSampler(ds, seed=self.split_seed), trainer_position(self), **self._loader_kwargs())

    @property
    def has_validation(self) -> bool:
        """Whether the split has validation data (without it nothing may be selected on held-out data)."""
        if self.split == "speaker_dependent":
            return self.val_fraction > 0
        spec = self.val_subjects
        return bool(spec) if isinstance(spec, (list, tuple)) else float(spec) > 0

    def val_dataloader(self) -> DataLoader | list:
        if not self.splits.get("val"):
            return []  # no validation subjects: Lightning skips validation (never the test split)
        return DataLoader(self.dataset("val"), shuffle=False, **self._loader_kwargs())

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset("test"), shuffle=False, **self._loader_kwargs())
