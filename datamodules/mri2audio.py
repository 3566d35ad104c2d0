"""Tagged MRI -> mel spectrogram data: subject-disjoint splits, on-the-fly audio crops, pairs.

Data: a folder of ``<subject>/<utt>.{nii.gz,nii,npy,npz}`` + ``<utt>.wav`` (or a ``manifest.csv``),
read through :mod:`articulate.readers`; ``data_dir=None`` uses the mri2audio phantom cohort
(generated once by ``prepare_data``, cached).

Per recording, once, in memory: the MRI sequence resized to ``frames x size x size`` and scaled to
[0, 1], and the audio at ``mel.sr``. As in the paper, the model sees the whole MRI sequence and a
``crop_samples``-long window of its audio (21,000 samples of ~22-24k: the window slides, which is
the paper's 100x augmentation); the target is that window's mel on the fixed unit dB scale of
:class:`articulate.signal.MelConfig` (64 x 64 with the defaults).

Training: each epoch draws ``crops.train`` crops per training recording (uniform start, no stored
copies). The crop start and the pair partner of item ``i`` in epoch ``e`` come from
``numpy.random.default_rng([seed, e, i])``, and the visiting order from ``default_rng([seed, e])``,
so an epoch is reproducible, differs from the next, and does not depend on the number of workers.
The sampler is ``datamodules.sampling.EpochSampler`` (a ``DistributedSampler``: one shard per rank, the
epoch from ``set_epoch``) in a resumable loader: a mid-epoch checkpoint resumes at the next batch.

Pairs (``pairs=True``, training only: the KL term of the paper uses them): each item's partner is
a crop of a recording by *another* training subject; with probability ``same_utterance_prob`` it
says the same utterance when such a recording exists, otherwise a different utterance (falling
back to the same utterance when no other utterance exists).

Validation/test: ``crops.eval`` deterministic crops per recording (1 = the centred crop; more =
evenly spaced from start to end).

Which MRI frames go with a crop (``crops.mri_window``): ``"recording"`` (the paper's setting, the default)
gives the whole sequence, which spans the whole recording, with every crop of it: the model is not
told where in the recording the window lies (up to ``(L - crop_samples) / sr`` s, ~0.14 s = ~9 mel
frames for the paper's lengths), so a crop's target is ambiguous by that much. ``"crop"`` resamples
the sequence in time to the crop's window (``frames`` frames spanning exactly the crop, linear
interpolation between frame centres; frame k of a recording of L samples is centred on sample
``(k + 0.5) L / T``): the input then determines the target's timing. ``mri_span [B, 2]`` says which
samples of the recording the given frames cover, so probes can read the MRI at each mel frame's time.

Ground truth: when every validation/test recording has phantom ground truth (``<id>.traj.npz`` with
``motion_region``, :func:`articulate.phantom.motion_region`), evaluation batches carry
``motion_region [B, frames, size, size]`` in [0, 1] on the model's grid (windowed like the MRI), for
scoring attention maps.

Batch (dict): ``mri [B,1,frames,size,size]`` float32 in [0,1], ``mel [B,1,n_mels,T]`` in [0,1],
``audio [B, crop_samples]`` float32, ``subject [B]`` / ``utterance [B]`` int64 (indices into
``subjects`` / ``utterances``, shared by all splits), ``sample_index [B]`` (item index in its
split), ``crop_start [B]`` (sample offset of the crop in the recording), ``mri_span [B, 2]`` (the samples
the MRI frames cover, see ``mri_window``); with pairs also
``mri_pair``, ``mel_pair``, ``same_utterance [B]`` bool and the partner's ``subject_pair`` /
``utterance_pair``; with ``pitch=True`` also ``pitch [B, T]`` (F0 tracked from the audio, semitones re 100 Hz) and
``voiced [B, T]`` bool at the mel frames (and ``pitch_pair`` / ``voiced_pair``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from articulate.errors import InputError
from articulate.signal.mel import MelConfig, MelSpectrogram, as_mel_config, power_to_unit
from articulate.transforms.mri import prepare_mri
from datamodules.mri2audio_items import CropContext, EvalCrops, MRIRecording, TrainCrops, crop_starts
from datamodules.sampling import EpochSampler, ResumableLoader, pin_memory, trainer_position
from datamodules.splits import Split, describe_split, make_split, n_folds, speaker_dependent_split

log = logging.getLogger(__name__)

# re-exported: the items live in datamodules.mri2audio_items
__all__ = ["MRI2AudioDataModule", "SubjectSplit", "Crops", "MRIRecording", "CropContext", "EpochSampler", "TrainCrops",
           "EvalCrops", "crop_starts", "prepare_mri"]


@dataclass(frozen=True)
class SubjectSplit:
    """How recordings are held out (``data.init_args.split``); the test part is the DataModule's ``fold``.

    Args:
        kind: ``loso`` (leave one subject out; fold k tests the k-th subject in sorted order) or ``kfold``
            (``k`` seeded subject groups): subject-disjoint; or ``speaker_dependent``: each subject's recordings
            split into train / validation / test (``val_fraction`` / ``test_fraction``; whole recordings).
        k: number of groups for ``kfold``.
        val_subjects: subjects (count, or fraction) moved from training to validation, chosen with the seed and
            alternating between utterances; 0 = no validation set.
        val_fraction, test_fraction: the parts of ``speaker_dependent``.
    """

    kind: Literal["loso", "kfold", "speaker_dependent"] = "loso"
    k: int = 5
    val_subjects: int | float = 2
    val_fraction: float = 0.1
    test_fraction: float = 0.2


@dataclass(frozen=True)
class Crops:
    """The audio windows the model is trained and scored on (``data.init_args.crops``).

    Args:
        train: crops per training recording per epoch (the paper's 100x sliding-window augmentation).
        eval: deterministic crops per validation/test recording (1 = centred).
        samples: window length in samples (21,000 -> 64 mel frames with the default mel).
        mri_window: ``"recording"`` (the whole sequence with every crop, the paper's setting) or ``"crop"`` (the
            sequence resampled in time to the crop's window); see the module docstring.
    """

    train: int = 100
    eval: int = 1
    samples: int = 21000
    mri_window: Literal["recording", "crop"] = "recording"


class MRI2AudioDataModule(LightningDataModule):
    """Tagged-MRI sequences and mel spectrograms of their audio, split by subject.

    Args:
        data_dir: dataset folder (or manifest .csv); None uses the mri2audio phantom.
        phantom: options for ``articulate.phantom.ensure_phantom("mri2audio", ...)`` (e.g. ``subjects``).
        split: how recordings are held out (:class:`SubjectSplit`).
        fold: which fold is the test part.
        crops: the audio windows (:class:`Crops`).
        frames, size: MRI sequence resized to ``frames x size x size``.
        mel: the mel transform and its unit dB scale (a MelConfig or its fields).
        pairs: add a partner crop from another subject to each training item (for the KL term).
        same_utterance_prob: probability that the partner says the same utterance.
        intensity_percentiles: MRI intensity percentiles mapped to 0 and 1.
        motion_regions: load the phantom's moving-articulator regions of the validation/test recordings
            when every one of them has its ground truth (``"auto"``), of every recording, training crops
            and their partners included (``"all"``: for the oracle mask of
            :class:`~lightning_modules.mri2audio_translator.MRI2AudioTranslator`), or never (``False``).
        batch_size, num_workers: DataLoader settings (workers run the on-the-fly crop + mel).
        seed: crops, pairs, kfold groups and validation subjects.
        pitch: give each item the F0 tracked from its audio at the mel frames (``pitch``, semitones re 100 Hz,
            and ``voiced``; pYIN once per recording at setup, :mod:`articulate.signal.pitch`), for translators
            with a pitch head.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        phantom: dict[str, Any] | None = None,
        split: SubjectSplit = SubjectSplit(),
        fold: int = 0,
        crops: Crops = Crops(),
        frames: int = 26,
        size: int = 128,
        mel: MelConfig | None = None,
        pairs: bool = True,
        same_utterance_prob: float = 0.5,
        intensity_percentiles: tuple[float, float] = (0.5, 99.5),
        batch_size: int = 16,
        num_workers: int = 2,
        seed: int = 0,
        motion_regions: Literal["auto", "all"] | bool = "auto",
        pitch: bool = False,
    ):
        super().__init__()
        mri_window = crops.mri_window
        if mri_window not in ("recording", "crop"):
            raise InputError(None, f"crops.mri_window must be 'recording' or 'crop', got {mri_window!r}")
        if motion_regions not in ("auto", "all", True, False):
            raise InputError(None, f"motion_regions must be 'auto', 'all' or false, got {motion_regions!r}")
        self.mri_window = mri_window
        self.motion_regions = motion_regions
        if split.kind not in ("loso", "kfold", "speaker_dependent"):
            raise InputError(None, f"split.kind must be 'loso', 'kfold' or 'speaker_dependent', got {split.kind!r}")
        self.val_fraction, self.test_fraction = float(split.val_fraction), float(split.test_fraction)
        for name, value in (("crops.train", crops.train), ("crops.eval", crops.eval), ("crops.samples", crops.samples),
                            ("frames", frames), ("size", size), ("batch_size", batch_size)):
            if int(value) < 1:
                raise InputError(None, f"{name} must be at least 1, got {value}")
        if not 0.0 <= same_utterance_prob <= 1.0:
            raise InputError(None, f"same_utterance_prob must be in [0, 1], got {same_utterance_prob}")
        lo, hi = intensity_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise InputError(None, f"intensity_percentiles must satisfy 0 <= lo < hi <= 100, got {intensity_percentiles}")
        self.save_hyperparameters(ignore=["mel"])
        self.hparams.update(split=asdict(split), crops=asdict(crops))  # their YAML form (a checkpoint holds plain values)
        self.data_dir = data_dir
        self.phantom = dict(phantom or {})
        if data_dir is None:  # a bad phantom option fails when the config is read, not after minutes of setup
            from articulate.phantom import check_options

            check_options("mri2audio", self.phantom)
        self.split, self.fold, self.k, self.val_subjects = split.kind, int(fold), int(split.k), split.val_subjects
        self.n_crops, self.eval_crops, self.crop_samples = int(crops.train), int(crops.eval), int(crops.samples)
        self.frames, self.size = int(frames), int(size)
        self.mel_config: MelConfig = as_mel_config(mel)
        self.hparams["mel"] = self.mel_config.to_dict()  # the resolved config, for the checkpoint
        self.sample_rate: int = int(self.mel_config.sr)
        self.pairs, self.same_utterance_prob = bool(pairs), float(same_utterance_prob)
        self.pitch = bool(pitch)
        self.intensity_percentiles = (float(lo), float(hi))
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.recordings: list[MRIRecording] = []
        self.subjects: list[str] = []
        self.utterances: list[str] = []
        self.splits: dict[str, list[int]] = {}
        self.split_info: Split | None = None
        self.context: CropContext | None = None
        self._root: Path | None = None
        self._warned_short = False  # one warning for the recordings shorter than a crop

    # ------------------------------------------------------------------------------------------
    # loading

    @property
    def mel_frames(self) -> int:
        return self.mel_config.frames(self.crop_samples)

    def root(self) -> Path:
        """The dataset folder (the cached phantom when ``data_dir`` is None)."""
        if self.data_dir is None:
            from articulate.phantom import ensure_phantom

            return Path(ensure_phantom("mri2audio", **self.phantom))
        root = Path(self.data_dir).expanduser()
        if not root.exists():
            raise InputError(root, "dataset folder not found")
        return root

    def prepare_data(self) -> None:
        # Only file writing this module does: the phantom cohort (rank 0; generated atomically).
        self.root()

    def _load(self, rec) -> MRIRecording:
        from articulate.readers.audio import read_audio
        from articulate.readers.mri import read_mri

        seq = read_mri(rec.image)
        wav, _ = read_audio(rec.audio, sr=self.sample_rate)
        n = int(wav.shape[-1])
        if n < self.crop_samples:
            if not self._warned_short:
                log.warning("%s: %d samples, shorter than a %d-sample crop: zero-padded at the end "
                            "(further short recordings are padded silently)", rec.audio, n, self.crop_samples)
                self._warned_short = True
            wav = np.pad(wav, (0, self.crop_samples - n))
        mri = prepare_mri(seq.frames, self.frames, self.size, self.intensity_percentiles)
        return MRIRecording(str(rec.id), str(rec.subject), str(rec.utterance), mri,
                            np.ascontiguousarray(wav, dtype=np.float32), n, Path(rec.image))

    def _load_motion(self, indices: list[int]) -> None:
        """The phantom's moving-articulator region of each recording, on the model's grid; all or none."""
        if self.motion_regions is False or not indices:
            return
        from articulate.errors import InputError as _Missing
        from articulate.phantom import motion_region

        found = {}
        for i in indices:
            rec = self.recordings[i]
            try:
                region = motion_region(rec.source, size=(self.size, self.size), frames=self.frames)
            except (_Missing, OSError, KeyError, ValueError):
                return  # real data (or an older phantom) without the ground truth
            found[i] = torch.from_numpy(np.ascontiguousarray(region, dtype=np.float32))
        for i, region in found.items():
            self.recordings[i].motion = region

    def setup(self, stage: str | None = None) -> None:
        """Read every recording (read-only: safe on every DDP rank) and build the split."""
        if self.recordings:
            return
        from articulate.readers.dataset_index import index_dataset

        root = self.root()
        self._root = root
        recs = [r for r in index_dataset(root) if r.kind == "mri"]
        if not recs:
            raise InputError(root, "no MRI recordings found (<subject>/<utt>.nii.gz|.nii|.npy|.npz + .wav)")
        no_audio = [r for r in recs if r.audio is None]
        if no_audio:
            log.warning("%d MRI recording(s) without audio skipped (e.g. %s)", len(no_audio), no_audio[0].image)
            recs = [r for r in recs if r.audio is not None]
        if not recs:
            raise InputError(root, "no MRI recording has an audio file (.wav) beside it")
        recs = sorted(recs, key=lambda r: (str(r.subject), str(r.utterance), str(r.id)))
        self.recordings = [self._load(r) for r in recs]
        self.subjects = sorted({r.subject for r in self.recordings})
        self.utterances = sorted({r.utterance for r in self.recordings})
        subj = [r.subject for r in self.recordings]
        log.info("MRI2AudioDataModule: %s split", self.split_name)
        try:
            if self.split == "speaker_dependent":
                parts = speaker_dependent_split(subj, None, self.val_fraction, self.test_fraction, "recording", self.seed)
                idx = {k: sorted(sp.index for sp in v) for k, v in parts.items()}
                names = {k: sorted({subj[i] for i in v}) for k, v in idx.items()}
                self.split_info = Split(idx["train"], idx["val"], idx["test"], names["train"], names["val"], names["test"])
            else:
                self.split_info = make_split(subj, self.split, self.fold, self.k, self.val_subjects, self.seed,
                                             strata=[r.utterance for r in self.recordings])
        except InputError as err:
            if err.path is not None:
                raise
            shown = ", ".join(self.subjects[:5]) + (", ..." if len(self.subjects) > 5 else "")
            raise InputError(root, f"{err.problem} (subjects: {shown}). Change --data.init_args.split.kind / fold / "
                                   "split.k / split.val_subjects (or split.val_fraction / test_fraction), or add subjects") from None
        s = self.split_info
        self.splits = {"train": s.train, "val": s.val, "test": s.test}
        if not s.train:
            raise InputError(root, "the split leaves no training recording")
        self._load_motion(sorted(s.val + s.test))
        if self.motion_regions == "all":
            self._load_motion(sorted(s.train))
        if self.pitch:
            from articulate.signal.pitch import track_pitch

            for rec in self.recordings:
                rec.pitch = track_pitch(rec.audio, self.mel_config)
        self.context = CropContext(
            self.recordings, {n: i for i, n in enumerate(self.subjects)}, {n: i for i, n in enumerate(self.utterances)},
            self.mel_config, self.crop_samples, self.n_crops, self.eval_crops, self.seed, self.pairs,
            self.same_utterance_prob, self._partners() if self.pairs else {}, self.mri_window,
        )

    def _partners(self) -> dict[int, tuple[list[int], list[int]]]:
        """Per training recording: (same-utterance, other-utterance) recordings of other training subjects."""
        train = self.splits["train"]
        if len({self.recordings[i].subject for i in train}) < 2:
            raise InputError(self._root, "pairs need at least 2 training subjects; set pairs: false or use more subjects")
        out = {}
        for i in train:
            a = self.recordings[i]
            others = [j for j in train if self.recordings[j].subject != a.subject]
            out[i] = ([j for j in others if self.recordings[j].utterance == a.utterance],
                      [j for j in others if self.recordings[j].utterance != a.utterance])
        return out

    # ------------------------------------------------------------------------------------------
    # datasets and loaders

    def dataset(self, split: Literal["train", "val", "test"]) -> Dataset:
        if not self.recordings:
            self.setup()
        if split == "train":
            return TrainCrops(self.context, self.splits["train"])
        return EvalCrops(self.context, self.splits[split])

    def _loader_kwargs(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "num_workers": self.num_workers,
                "persistent_workers": self.num_workers > 0, "pin_memory": pin_memory(self)}

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, shuffle=False, **self._loader_kwargs())

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        return ResumableLoader(ds, EpochSampler(ds, seed=self.seed), trainer_position(self), **self._loader_kwargs())

    @property
    def has_validation(self) -> bool:
        """Whether the split has validation data (without it nothing may be selected on held-out data)."""
        if self.split == "speaker_dependent":
            return self.val_fraction > 0
        return float(self.val_subjects) > 0

    @property
    def split_name(self) -> str:
        """The split as logs and tables name it."""
        return describe_split(self.split, unit="recording", val_fraction=self.val_fraction,
                              test_fraction=self.test_fraction)

    def val_dataloader(self) -> DataLoader | list:
        if not self.recordings:
            self.setup()
        if not self.splits.get("val"):
            return []  # no validation subjects: Lightning skips validation
        return self._loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"))

    def item_info(self, split: Literal["train", "val", "test"], sample_index: int) -> dict[str, Any]:
        """Which recording and crop an evaluation item (``batch["sample_index"]``) comes from, e.g. to
        name prediction files; for ``train`` the recording only (its crops change every epoch)."""
        if not self.recordings:
            self.setup()
        if split == "train":
            rec_index, start = self.splits["train"][int(sample_index) // self.n_crops], None
        else:
            rec_index, start = EvalCrops(self.context, self.splits[split]).index[int(sample_index)]
        rec = self.recordings[rec_index]
        return {"id": rec.id, "subject": rec.subject, "utterance": rec.utterance, "crop_start": start,
                "n_samples": rec.n_samples, "source": rec.source}

    def train_mels(self, crops_per_recording: int = 16, batch_size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
        """Mel targets of the training recordings without the MRI (cheap; for mean-mel baselines):
        ``crops_per_recording`` evenly spaced crops each, as batches of ``mel`` and ``utterance``."""
        if not self.recordings:
            self.setup()
        mel = MelSpectrogram(self.mel_config)
        rows = [(r, s) for r in self.splits["train"]
                for s in crop_starts(len(self.recordings[r].audio), self.crop_samples, crops_per_recording)]
        for b in range(0, len(rows), batch_size):
            chunk = rows[b:b + batch_size]
            audio = torch.from_numpy(np.stack([self.recordings[r].audio[s:s + self.crop_samples] for r, s in chunk]))
            with torch.no_grad():
                m = power_to_unit(mel(audio), self.mel_config)[:, None]
            utt = torch.tensor([self.context.utterance_ids[self.recordings[r].utterance] for r, _ in chunk])
            yield {"mel": m, "utterance": utt}

    def ridge_items(self, crops_per_recording: int = 16) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray, str]]:
        """Training crops for a probe (``articulate.baselines.ridge.RidgeProbe``): per training recording
        ``crops_per_recording`` evenly spaced crops as ``(mri [T, H, W], mel [n_mels, F], positions [F], subject)``,
        with the MRI windowed as the model sees it and ``positions`` each mel frame's place on its frames."""
        from articulate.baselines.ridge import frame_positions

        if not self.recordings:
            self.setup()
        items = EvalCrops(self.context, [])
        for r in self.splits["train"]:
            rec = self.recordings[r]
            for start in crop_starts(len(rec.audio), self.crop_samples, crops_per_recording):
                mri, _, span = self.context.window(rec, start)
                _, mel = items.crop(rec, start)
                pos = frame_positions(start, self.mel_frames, self.mel_config.hop_length, tuple(span), mri.shape[0])
                yield mri, mel[0], pos, rec.subject

    # ------------------------------------------------------------------------------------------
    # description

    @property
    def num_folds(self) -> int:
        if not self.recordings:
            self.setup()
        if self.split == "speaker_dependent":
            return 1
        return n_folds([r.subject for r in self.recordings], self.split, self.k)

    def describe(self) -> str:
        """A few lines on the data, the split and the shapes (for logs and the CLI)."""
        if not self.recordings:
            self.setup()
        s = self.split_info
        lengths = np.array([r.n_samples for r in self.recordings])
        cfg = self.mel_config

        def subjects(names: list[str]) -> str:
            return ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:5])}, ... ({len(names)})"

        fold_desc = f"fold {self.fold} of {self.num_folds}" + (f" (k={self.k}, seed={self.seed})" if self.split == "kfold" else "")
        lines = [
            f"MRI2AudioDataModule: {len(self.recordings)} recordings, {len(self.subjects)} subjects, "
            f"utterances {', '.join(f'{u} ({sum(r.utterance == u for r in self.recordings)})' for u in self.utterances)}",
            f"  source: {self._root}" + (" (phantom)" if self.data_dir is None else ""),
            f"  split: {self.split} {fold_desc} ({self.split_name}); train {len(s.train)} rec / {len(s.train_subjects)} subj, "
            f"val {len(s.val)} / {len(s.val_subjects)} [{subjects(s.val_subjects)}], "
            f"test {len(s.test)} / {len(s.test_subjects)} [{subjects(s.test_subjects)}]",
            f"  audio: {self.sample_rate} Hz, {lengths.min()}-{lengths.max()} samples; crops of {self.crop_samples} "
            f"({self.n_crops} per training recording per epoch = {len(s.train) * self.n_crops} items; "
            f"{self.eval_crops} per eval recording)",
            f"  mri [B,1,{self.frames},{self.size},{self.size}] in [0,1] (percentiles {self.intensity_percentiles}); "
            f"mel [B,1,{cfg.n_mels},{self.mel_frames}] unit scale {cfg.db_min:g}..{cfg.db_max:g} dB "
            f"(n_fft {cfg.n_fft}, hop {cfg.hop_length}); pairs {'on' if self.pairs else 'off'}",
        ]
        return "\n".join(lines)
