"""What both wav2uti LightningModules share (the diffusion model and the DNN baseline).

* Clip geometry (``clips``: :class:`articulate.transforms.clips.ClipGeometry`) is the DataModule's: the direction record
  links it from the data section; at ``setup`` it is checked against the DataModule through the
  explicit :class:`ClipSource` interface.
* Frozen pretrained encoders (wav2vec 2.0, BERT) are kept off the module tree: they are neither
  trained, averaged (EMA), wrapped by DDP nor saved; checkpoints rebuild them from their hub id or
  folder. Their outputs are computed once per dataset into the on-disk feature cache (rank 0 first
  under DDP, the other ranks wait at a barrier and read it).
* Evaluation: RMSE and PSNR on 0-255 pixels (``<stage>/rmse``, ``<stage>/psnr``), the callbacks' video
  outputs, and a PNG of real vs generated frames per validation
  (``<log_dir>/wav2uti_samples/<run>/step<N>.png``).
* Floors and ceiling (``baselines``: a :class:`articulate.baselines.wav2uti.RidgeProbe`, fitted at fit
  start on the training clips): ``<stage>/rmse_mean_baseline``, ``_ridge`` and the PSNRs on the model's
  clips; with ``evaluation.contour_ckpt`` (a uti2contour checkpoint) the test also tracks the tongue in
  generated and real frames: ``test/contour_msd`` (generated vs real, both tracked),
  ``test/contour_found_fraction``, on the phantom ``test/contour_msd_truth`` (vs the true surface) and
  its ceiling ``test/contour_msd_truth_oracle`` (real frames tracked: the tracker's own error); see
  :mod:`lightning_modules.wav2uti_eval`. ``test_per_recording`` keeps per-recording means for paired tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from articulate.errors import InputError
from articulate.inference.wav2uti import pretrained_frozen
from articulate.transforms.clips import ClipGeometry
from articulate.utils.images import comparison_sheet, write_png
from articulate.utils.settings import as_settings
from lightning_modules.base import ArticulateModule
from lightning_modules.wav2uti_eval import FrameRows, TestScorer, load_tracker, per_recording, summarise

log = logging.getLogger(__name__)


@runtime_checkable
class ClipSource(Protocol):
    """What a wav2uti DataModule offers its model (``datamodules.wav2uti.Wav2UTIDataModule``): everything the
    modules read of ``trainer.datamodule``, read without defaults."""

    resolution: int
    clip_frames: int
    fps: float
    sample_rate: int
    condition_context: int
    utterances: list  # the loaded utterances (each with an ``id``), indexed by the clips' ``recording``

    @property
    def probe(self) -> str | None:
        """Where the ultrasound probe is in the frames ("top" for fan images; None: no image of the anatomy)."""

    def attach_features(self, audio_fn: Callable | None = None, audio_key: str | None = None,
                        text_fn: Callable | None = None, text_key: str | None = None, compute: bool = True) -> dict: ...

    def baseline_clips(self, split: str) -> Dataset:
        """Deterministic clips of a split for the floors' fit (``"train"``: every training clip)."""

    def val_dataloader(self) -> Any: ...


@dataclass(frozen=True)
class VideoEvaluation:
    """What the validation and test passes score beside the loss (``model.init_args.evaluation``; module docstring).

    Args:
        val_clips: clips predicted and scored at each validation (None = every clip; the diffusion model's samples
            are slow, so it scores a few).
        contour_ckpt: a uti2contour checkpoint: the test tracks the tongue in generated and real frames.
        contour_threshold: the tracker's confidence below which a keypoint counts as not found.
    """

    val_clips: int | None = None
    contour_ckpt: str | None = None
    contour_threshold: float = 0.3


class OffTree:
    """What a wav2uti module uses but does not own, kept off its module tree: the frozen pretrained encoders
    (their weights come from their hub id or folder), the floors (refitted from the data), the contour tracker
    (from ``contour_ckpt``) and a cascade's base stage (from ``low_res_ckpt``). Held in this plain object, not as
    submodules, so Lightning neither trains, wraps (DDP), moves nor saves them; shared rather than copied when
    the EMA callback deep-copies the LightningModule."""

    def __init__(self) -> None:
        self.audio_encoder: nn.Module | None = None  # frozen pretrained ones only; trainable ones are submodules
        self.text_encoder: nn.Module | None = None
        self.baselines: Any = None
        self.contour_tracker: nn.Module | None = None
        self.base_stage: nn.Module | None = None

    def __deepcopy__(self, memo) -> OffTree:
        return self


def video_outputs(pred: torch.Tensor, real: torch.Tensor, fps: float, index: torch.Tensor | None) -> dict[str, Any]:
    """The callbacks' outputs protocol for videos: ``[B,1,T,H,W]`` in [0, 1] (the modules work in [-1, 1])."""
    return {"video_pred": ((pred.float().clamp(-1, 1) + 1) / 2), "video_target": ((real.float() + 1) / 2),
            "fps": float(fps), "sample_index": index}


CONDITION_KEYS = ("audio", "audio_feats", "text", "text_feats", "text_mask")


def partner_condition(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with each clip's condition (speech, transcript, their features) replaced by its partner's."""
    out = dict(batch)
    for key in CONDITION_KEYS:
        if f"partner_{key}" in batch:
            out[key] = batch[f"partner_{key}"]
        elif key in ("text_feats", "text_mask"):
            out.pop(key, None)
    return out


class Wav2UTIModule(ArticulateModule):
    """Base of the wav2uti modules: encoders, clip geometry, feature cache, pixel metrics, sample sheets."""

    direction = "wav2uti"

    def __init__(self, audio_encoder: nn.Module, text_encoder: nn.Module | None, clips: ClipGeometry,
                 baselines: Any = None, evaluation: VideoEvaluation = VideoEvaluation()):
        super().__init__()
        self.off_tree = OffTree()  # a plain object: nn.Module keeps it as an attribute, not a submodule
        self.set_encoder("audio_encoder", audio_encoder)
        self.set_encoder("text_encoder", text_encoder)
        clips, evaluation = as_settings(ClipGeometry, clips), as_settings(VideoEvaluation, evaluation)
        self.resolution, self.clip_frames, self.fps = int(clips.resolution), int(clips.frames), float(clips.fps)
        self.condition_context = int(clips.context)
        self.val_clips = None if evaluation.val_clips is None else int(evaluation.val_clips)
        from articulate.metrics import PSNR, RMSE

        self.val_rmse, self.val_psnr = RMSE(pixel_range="signed"), PSNR(pixel_range="signed")
        self.test_rmse, self.test_psnr = RMSE(pixel_range="signed"), PSNR(pixel_range="signed")
        self._val_sheet: tuple[torch.Tensor, torch.Tensor] | None = None
        # the floors are refitted from the data, never saved (D x P weights), and shared by EMA copies
        self.off_tree.baselines = baselines
        ckpt = evaluation.contour_ckpt
        self.contour_ckpt, self.contour_threshold = (str(ckpt) if ckpt else None), float(evaluation.contour_threshold)
        self._frame_rows: dict[str, FrameRows] = {}
        self._scorer = TestScorer()
        self.test_per_recording: dict[str, list] = {}

    def set_encoder(self, name: str, encoder: nn.Module | None) -> None:
        """A trainable encoder is a submodule (trained, saved under ``<name>.``); a frozen pretrained one goes off the
        module tree (see the module docstring). Either is read as ``self.<name>`` (the properties below)."""
        if pretrained_frozen(encoder):
            setattr(self.off_tree, name, encoder)
        elif encoder is not None:
            setattr(self, name, encoder)  # nn.Module registers it in ``_modules`` (the property only reads)

    @property
    def audio_encoder(self) -> nn.Module:
        off = self.off_tree.audio_encoder
        return off if off is not None else self._modules["audio_encoder"]

    @property
    def text_encoder(self) -> nn.Module | None:
        off = self.off_tree.text_encoder
        return off if off is not None else self._modules.get("text_encoder")  # None: the audio-only model

    def _encoders_to_device(self) -> None:
        for enc in (self.audio_encoder, self.text_encoder):
            if pretrained_frozen(enc):
                enc.to(self.device)

    # -- conditions ------------------------------------------------------------------------
    def audio_features(self, batch: dict[str, Any]) -> torch.Tensor:
        """``[B, T + 2c, D]``: the clip's frames and ``condition_context`` frames of speech on each side."""
        if "audio_feats" in batch:
            return batch["audio_feats"].float()
        self._encoders_to_device()
        n = batch["video"].shape[2] + 2 * self.condition_context
        return self.audio_encoder(batch["audio"].float(), fps=self.fps, n_frames=n)

    def text_features(self, batch: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.text_encoder is None:
            return None, None
        if "text_feats" in batch:
            return batch["text_feats"].float(), batch["text_mask"]
        self._encoders_to_device()
        return self.text_encoder(list(batch["text"]))

    # -- data ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if not isinstance(dm, ClipSource):
            return
        ours = (self.resolution, self.clip_frames, round(self.fps, 6), int(self.audio_encoder.sample_rate),
                self.condition_context)
        theirs = (int(dm.resolution), int(dm.clip_frames), round(float(dm.fps), 6), int(dm.sample_rate),
                  int(dm.condition_context))
        if ours != theirs:
            raise ValueError(f"model (resolution, clip_frames, fps, audio rate, condition_context) {ours} differ from "
                             f"the data's {theirs}; "
                             "set them once, in the data section (the config links them to the model)")
        self.attach_frozen_features(dm)
        if self.contour_ckpt:
            self.contour_tracker()  # a bad checkpoint fails now, not after the fit

    def attach_frozen_features(self, dm: ClipSource) -> None:
        """Fill the feature cache with the frozen encoders' outputs (rank 0 first) and attach it."""
        trainer = self.trainer
        device = trainer.strategy.root_device
        audio_enc, text_enc = self.audio_encoder, self.text_encoder
        fps = float(dm.fps)
        audio_fn = audio_key = text_fn = text_key = None
        if audio_enc.frozen:  # the encoder contract (articulate.networks.wav2uti.encoders)
            audio_enc.to(device)
            audio_key = audio_enc.cache_key() + f":fps={fps:g}:sr={dm.sample_rate}"

            def audio_fn(audio: np.ndarray, n_frames: int) -> np.ndarray:
                with torch.no_grad():
                    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(device)
                    return audio_enc(x, fps=fps, n_frames=n_frames)[0].float().cpu().numpy()

        if text_enc is not None and text_enc.frozen:
            text_enc.to(device)
            text_key = text_enc.cache_key()

            def text_fn(text: str) -> np.ndarray:
                with torch.no_grad():
                    feats, mask = text_enc([text])
                    return feats[0][mask[0]].float().cpu().numpy()

        if audio_fn is None and text_fn is None:
            return
        if trainer.world_size > 1:
            if trainer.is_global_zero:
                dm.attach_features(audio_fn, audio_key, text_fn, text_key, compute=True)
            trainer.strategy.barrier("wav2uti_feature_cache")
            if not trainer.is_global_zero:
                dm.attach_features(audio_fn, audio_key, text_fn, text_key, compute=True)
        else:
            dm.attach_features(audio_fn, audio_key, text_fn, text_key, compute=True)

    # -- floors, ceiling and contours (lightning_modules.wav2uti_eval) --------------------------
    @property
    def baselines(self):
        return self.off_tree.baselines

    def contour_tracker(self):
        """The uti2contour tracker of ``contour_ckpt`` (loaded once, off the module tree), or None."""
        if not self.contour_ckpt:
            return None
        tracker = self.off_tree.contour_tracker
        if tracker is None:
            if not Path(self.contour_ckpt).is_file():
                raise InputError(self.contour_ckpt, "contour_ckpt: file not found (a uti2contour checkpoint)")
            tracker = load_tracker(self.contour_ckpt)
            self.off_tree.contour_tracker = tracker
        return tracker.to(self.device)

    def fit_baselines(self) -> None:
        """Fit the floors on the DataModule's training clips (penalty chosen on its validation clips)."""
        from torch.utils.data import DataLoader

        from datamodules.clips import collate_clips

        floors = self.baselines  # the ridge probe (articulate.baselines.wav2uti.RidgeProbe)
        dm = self.trainer.datamodule if self._trainer is not None else None
        if floors is None or not isinstance(dm, ClipSource):
            return
        floors.reset()
        floors.bind(int(dm.sample_rate), float(dm.fps), device=self.device, margin=self.condition_context)
        for split, add in (("train", floors.add), ("val", floors.add_heldout)):
            clips = dm.baseline_clips(split)
            for batch in DataLoader(clips, batch_size=64, shuffle=False, collate_fn=collate_clips):
                add(batch["audio"], batch["video"])
        floors.fit()
        log.info("wav2uti floors fitted: %s", floors.describe())

    def on_fit_start(self) -> None:
        self.fit_baselines()

    def on_test_start(self) -> None:
        if self.baselines is not None and not self.baselines.fitted:
            self.fit_baselines()  # a test from a checkpoint: the floors are refitted (deterministic)
        dm = self.trainer.datamodule
        # where the ultrasound probe is in the frames; test data given as bare loaders: fan images (probe at the top)
        probe_side = dm.probe if isinstance(dm, ClipSource) else "top"
        tracker = self.contour_tracker()
        if tracker is not None and probe_side is None:
            log.warning("contour_ckpt: the data's frames are not fan images (view=scanlines): no contour measure")
            tracker = None
        self._scorer = TestScorer(tracker, self.contour_threshold, probe=probe_side or "top")

    def _score_floors(self, batch: dict[str, Any], pred: torch.Tensor, real: torch.Tensor, idx, prefix: str,
                      swapped: torch.Tensor | None = None) -> None:
        """Per-frame rows of the model, the floors, (test) the random-clip floor, the swap check and the
        contours, for the clips the model was scored on."""
        if self._trainer is not None and self.trainer.sanity_checking:
            return
        ridge, n = self.baselines, real.shape[0]
        floors = {}
        if ridge is not None and ridge.fitted:
            floors = {"mean_baseline": ridge.mean_video(real),
                      "ridge": ridge.predict(batch["audio"][:n], real.shape[2]).to(real)}
        if "partner_video" in batch:
            floors["random_clip"] = batch["partner_video"][:n].to(real)
        contour = prefix == "test" and self._scorer.tracker is not None
        if not floors and not contour and swapped is None:
            return
        if prefix not in self._frame_rows:
            self._frame_rows[prefix] = FrameRows().to(self.device)
        rows = self._scorer.rows(batch, pred, real, floors, contour, swapped)
        self._frame_rows[prefix].update(rows, idx, real.shape[2])

    def _log_rows(self, prefix: str) -> dict[str, float]:
        metric = self._frame_rows.get(prefix)
        if metric is None:
            return {}
        rows = metric.table()  # collective under DDP: every rank calls it
        metric.reset()
        values = summarise(rows, prefix)
        for key, value in values.items():
            self.log(key, value, sync_dist=True)
        if prefix == "test":
            dm = self.trainer.datamodule
            names = [u.id for u in dm.utterances] if isinstance(dm, ClipSource) else []
            self.test_per_recording = per_recording(rows, names)
            self._write_per_recording()
        return values

    def _write_per_recording(self) -> None:
        """``<log dir>/test_per_recording.json``: every measure per test recording, the floors' included, for
        paired tests between runs."""
        import json

        from articulate.utils.atomic import atomic_path

        log_dir = self.trainer.log_dir if self._trainer is not None else None
        if not log_dir or not self.trainer.is_global_zero or not self.test_per_recording:
            return
        with atomic_path(Path(log_dir) / "test_per_recording.json") as tmp:
            tmp.write_text(json.dumps(self.test_per_recording, indent=1, allow_nan=False))

    # -- evaluation ------------------------------------------------------------------------
    def log_eval_loss(self, batch: dict[str, Any], batch_idx: int, prefix: str, pred: torch.Tensor | None) -> None:
        """Log ``<prefix>/loss`` (the training objective on evaluation data); ``pred``: the generated clips, if any."""
        raise NotImplementedError

    def clips_to_score(self, batch_idx: int, batch_size: int, prefix: str) -> int:
        """How many clips of this batch to generate and score: at validation the first ``evaluation.val_clips``
        (assuming equal batches), at test every clip."""
        if prefix != "val" or self.val_clips is None:
            return batch_size
        return int(max(0, min(batch_size, self.val_clips - batch_idx * batch_size)))

    def predict_clips(self, batch: dict[str, Any], n: int, cascade: bool) -> torch.Tensor:
        """Generated videos ``[n, 1, T, R, R]`` (about [-1, 1]; clamped for scoring) for the first ``n`` clips."""
        raise NotImplementedError

    def _eval_step(self, batch: dict[str, Any], batch_idx: int, prefix: str) -> dict[str, Any]:
        n = self.clips_to_score(batch_idx, batch["video"].shape[0], prefix)
        pred = self.predict_clips(batch, n, cascade=prefix == "test") if n > 0 else None
        self.log_eval_loss(batch, batch_idx, prefix, pred)
        if pred is None:
            return {}  # nothing generated: the metrics callback skips an empty outputs dict
        pred = pred.clamp(-1, 1)
        swapped = None
        if "partner_video" in batch:  # the swap check: the same noise, the partner's speech and transcript
            swapped = self.predict_clips(partner_condition(batch), n, cascade=prefix == "test").clamp(-1, 1)
        real = batch["video"][:n]
        idx = batch["sample_index"][:n] if "sample_index" in batch else None
        rmse, psnr = (self.val_rmse, self.val_psnr) if prefix == "val" else (self.test_rmse, self.test_psnr)
        rmse.update(pred, real, sample_index=idx)
        psnr.update(pred, real, sample_index=idx)
        self.log(f"{prefix}/rmse", rmse, batch_size=n)
        self.log(f"{prefix}/psnr", psnr, batch_size=n)
        self._score_floors(batch, pred, real, idx, prefix, swapped)
        if prefix == "val" and batch_idx == 0:
            self._val_sheet = (real[:2].detach().cpu(), pred[:2].detach().cpu())
        return video_outputs(pred, real, self.fps, idx)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, batch_idx, "test")

    def sample_dir(self) -> Path:
        """``<log_dir>/wav2uti_samples/<run version>``; asks ``trainer.log_dir`` (a DDP collective) on every rank."""
        trainer = self.trainer
        out = Path(trainer.log_dir or trainer.default_root_dir) / "wav2uti_samples"
        version = getattr(self.logger, "version", None) if self.logger is not None else None
        return out / str(version) if version not in (None, "") else out

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self._log_rows("val")
        out = self.sample_dir()  # collective under DDP: every rank asks
        if self._val_sheet is not None and self.trainer.is_global_zero:
            write_png(out / f"step{self.global_step:07d}.png", comparison_sheet(*(t.numpy() for t in self._val_sheet)))

    def on_test_epoch_end(self) -> None:
        self._log_rows("test")
