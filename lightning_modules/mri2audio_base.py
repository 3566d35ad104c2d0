"""What both mri2audio LightningModules share: data geometry, checkpoint metadata, floors and ceilings, evaluation.

Beside the model every evaluation scores (``<stage>`` = ``val`` or ``test``):

- the per-utterance mean mel of the training crops (``<stage>/corr2d_mean_baseline``,
  ``<stage>/pesq_mean_baseline``): the floor, what a model that ignores the MRI gets;
- a ridge probe (:class:`articulate.baselines.ridge.RidgeProbe`), fitted in closed form on the
  training crops at fit start (``<stage>/corr2d_ridge``, ``test/pesq_ridge``): what a second-order
  linear map of the motion gets;
- the oracle, the true mel through the same Griffin-Lim (``test/pesq_oracle``): the vocoder's
  ceiling (its Corr2D is 1 by definition, not logged);
- with A and ground truth (the phantom's ``motion_region`` in the batch),
  ``<stage>/attention_motion_ratio``: mean mask inside the moving-articulator region over outside;
  ``<stage>/attention_motion_modulation``: the same for the masks' temporal standard deviation.

``mel``, ``input_shape`` and ``intensity_percentiles`` are the DataModule's (``link_arguments`` in the
direction record sets them from the data section of the config). A module built in Python without
them takes them from its DataModule at ``setup`` through the explicit :class:`MelTargets` interface;
given values must agree with the DataModule's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from articulate.baselines.ridge import RidgeProbe, frame_positions
from articulate.inference.mri2audio import DEFAULT_INPUT_SHAPE, DEFAULT_PERCENTILES, Mri2AudioSynthesizer
from articulate.signal.griffin_lim import resolve_griffin_lim, unit_mel_to_audio
from articulate.signal.mel import MelConfig, as_mel_config
from lightning_modules.base import ArticulateModule


@runtime_checkable
class MelTargets(Protocol):
    """The data geometry an mri2audio DataModule offers its model (``datamodules.mri2audio.MRI2AudioDataModule``)."""

    mel_config: MelConfig
    frames: int
    size: int
    intensity_percentiles: tuple[float, float]


@runtime_checkable
class TrainMels(Protocol):
    """A DataModule that gives its training mels without the MRI (much cheaper, for the mean-mel floor)."""

    def train_mels(self) -> Iterable[dict[str, torch.Tensor]]: ...


@runtime_checkable
class RidgeCrops(Protocol):
    """A DataModule that gives training crops for the ridge probe: ``(mri [T, H, W], mel [n_mels, F],
    positions [F], subject)``, positions = each mel frame's place on the MRI frames."""

    def ridge_items(self) -> Iterable[tuple]: ...


@dataclass(frozen=True)
class MelEvaluation:
    """What the validation and test passes compute beside the model's mels (``model.init_args.evaluation``).

    Args:
        audio: also synthesise waveforms (Griffin-Lim) for PESQ and the panels.
        griffin_lim, griffin_lim_iters: the waveform inversion; "librosa" (the paper's ``mel_to_audio``, the
            default so that tables compare like with like), "torch" (batched, GPU) or "auto".
        pesq_mode: "wb" or "nb" for the floors' and ceilings' PESQ (the callback's own is configured there).
        ridge_probe: fit the ridge probe at fit start (or at test, from the DataModule, when the checkpoint has
            none) and score it beside the model.
    """

    audio: bool = True
    griffin_lim: Literal["auto", "torch", "librosa"] = "librosa"
    griffin_lim_iters: int = 32
    pesq_mode: Literal["wb", "nb"] = "wb"
    ridge_probe: bool = True


class MRI2AudioModule(ArticulateModule):
    """Shared by the translator and Lip2AudSpec.

    Args:
        mel: the mel transform of the targets (linked from the data).
        input_shape: (frames, height, width) of the MRI input (linked from the data).
        intensity_percentiles: the MRI intensity scaling (linked from the data).
        evaluation: the floors, ceilings and waveforms of the evaluation passes (:class:`MelEvaluation`).
    """

    direction = "mri2audio"
    inference_class = "articulate.inference.mri2audio.Mri2AudioSynthesizer"

    def __init__(self, mel: MelConfig | None = None, input_shape: Sequence[int] | None = None,
                 intensity_percentiles: Sequence[float] | None = None, evaluation: MelEvaluation = MelEvaluation()) -> None:
        super().__init__()
        self.ridge_probe = bool(evaluation.ridge_probe)
        self.ridge: RidgeProbe | None = None
        resolve_griffin_lim(evaluation.griffin_lim)
        self.griffin_lim = evaluation.griffin_lim
        self._given = {"mel": mel is not None, "input_shape": input_shape is not None,
                       "intensity_percentiles": intensity_percentiles is not None}
        self.mel_config: MelConfig = as_mel_config(mel)
        self.sample_rate: int = int(self.mel_config.sr)
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in (input_shape or DEFAULT_INPUT_SHAPE))
        self.intensity_percentiles = tuple(float(v) for v in (intensity_percentiles or DEFAULT_PERCENTILES))
        self.eval_audio = bool(evaluation.audio)
        self.griffin_lim_iters = int(evaluation.griffin_lim_iters)
        self.pesq_mode = evaluation.pesq_mode
        self._metrics: dict[str, dict[str, Any]] = {}
        self.test_per_sample: dict[str, dict[int, float]] = {}  # the module's test metrics per sample (paired tests)
        self._baseline_audio: dict[tuple[int, int], torch.Tensor] = {}
        self.mean_mel: torch.Tensor | None = None  # [U, 1, H, W], per training utterance id
        self.mean_mel_all: torch.Tensor | None = None  # [1, H, W], for ids never seen in training

    # -- data geometry -------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if not isinstance(dm, MelTargets):
            return
        theirs = {"mel": as_mel_config(dm.mel_config), "input_shape": (int(dm.frames), int(dm.size), int(dm.size)),
                  "intensity_percentiles": tuple(float(v) for v in dm.intensity_percentiles)}
        ours = {"mel": self.mel_config, "input_shape": self.input_shape, "intensity_percentiles": self.intensity_percentiles}
        for name, value in theirs.items():
            if not self._given[name]:
                continue
            if ours[name] != value:
                raise ValueError(f"{type(self).__name__}.{name} {ours[name]} differs from the DataModule's {value}; "
                                 "set it once, in the data section (the config links it to the model)")
        self.mel_config, self.input_shape, self.intensity_percentiles = theirs["mel"], theirs["input_shape"], theirs["intensity_percentiles"]
        self.sample_rate = int(self.mel_config.sr)

    def note_input(self, mri: torch.Tensor) -> None:
        """The grid the model really trains on (a module built in Python may train on any size)."""
        self.input_shape = tuple(int(s) for s in mri.shape[-3:])

    # -- inference and checkpoints -------------------------------------------------------
    def inference_init(self) -> dict[str, Any]:
        return {**self.networks(), "mel": self.mel_config, "input_shape": list(self.input_shape),
                "intensity_percentiles": list(self.intensity_percentiles), "griffin_lim": self.griffin_lim,
                "griffin_lim_iters": self.griffin_lim_iters}

    def networks(self) -> dict[str, Any]:
        """The inference object's networks (named as this module's children)."""
        raise NotImplementedError

    def predict_with_masks(self, mri: torch.Tensor, region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unit-scale mels ``[B, 1, 64, 64]`` and the attention masks (None without A) of MRI ``[B, 1, T, H, W]``;
        ``region``: the batch's ``motion_region`` (phantom), which an oracle mask reads. The test pass and the
        reproduction's examples and paired-test details call it."""
        raise NotImplementedError

    def to_inference(self) -> Mri2AudioSynthesizer:
        return Mri2AudioSynthesizer(**self.inference_init())

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {
            "mel_config": self.mel_config.to_dict(), "sample_rate": int(self.sample_rate),
            "input_shape": list(self.input_shape), "intensity_percentiles": list(self.intensity_percentiles),
            "mean_mel": None if self.mean_mel is None else self.mean_mel.cpu(),
            "mean_mel_all": None if self.mean_mel_all is None else self.mean_mel_all.cpu(),
            "ridge_probe": None if self.ridge is None else self.ridge.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get("articulate") or {}
        if meta.get("mel_config") is not None:
            self.mel_config = as_mel_config(meta["mel_config"])
        self.sample_rate = int(meta.get("sample_rate") or self.mel_config.sr)
        self.input_shape = tuple(meta.get("input_shape") or self.input_shape)
        self.intensity_percentiles = tuple(meta.get("intensity_percentiles") or self.intensity_percentiles)
        self.mean_mel, self.mean_mel_all = meta.get("mean_mel"), meta.get("mean_mel_all")
        self.ridge = RidgeProbe().load_state_dict(meta["ridge_probe"]) if meta.get("ridge_probe") else None
        self._baseline_audio = {}

    # -- per-utterance mean-mel baseline (the floor) ---------------------------------------
    @torch.no_grad()
    def compute_mean_mels(self, batches: Iterable[dict]) -> None:
        """Mean training mel per utterance id; sums are reduced over DDP ranks."""
        sums: torch.Tensor | None = None
        counts: torch.Tensor | None = None
        for batch in batches:
            mel, utt = batch["mel"].detach().float().cpu(), batch["utterance"].detach().long().cpu()
            n = int(utt.max()) + 1
            if sums is None:
                sums, counts = mel.new_zeros((0, *mel.shape[1:])), mel.new_zeros(0)
            if n > sums.shape[0]:
                sums = torch.cat([sums, sums.new_zeros((n - sums.shape[0], *sums.shape[1:]))])
                counts = torch.cat([counts, counts.new_zeros(n - counts.shape[0])])
            sums.index_add_(0, utt, mel)
            counts.index_add_(0, utt, torch.ones(len(utt)))
        if sums is None:
            return
        if self._trainer is not None and self.trainer.world_size > 1:
            strategy = self.trainer.strategy
            n = int(strategy.reduce(torch.tensor(float(sums.shape[0]), device=self.device), reduce_op="max").item())
            pad = n - sums.shape[0]
            sums = torch.cat([sums, sums.new_zeros((pad, *sums.shape[1:]))])
            counts = torch.cat([counts, counts.new_zeros(pad)])
            sums = strategy.reduce(sums.to(self.device), reduce_op="sum").cpu()
            counts = strategy.reduce(counts.to(self.device), reduce_op="sum").cpu()
        overall = sums.sum(0) / counts.sum().clamp_min(1.0)
        mean = sums / counts.clamp_min(1.0).view(-1, *([1] * (sums.dim() - 1)))
        mean[counts == 0] = overall
        self.mean_mel, self.mean_mel_all = mean, overall
        self._baseline_audio = {}

    def baseline_prediction(self, utterance: torch.Tensor) -> torch.Tensor | None:
        """The mean-mel baseline's "prediction" for each utterance id ``[B] -> [B, 1, H, W]``."""
        if self.mean_mel is None:
            return None
        table = torch.cat([self.mean_mel, self.mean_mel_all[None]]).to(utterance.device)
        idx = utterance.long()
        idx = torch.where((idx >= 0) & (idx < self.mean_mel.shape[0]), idx, torch.full_like(idx, table.shape[0] - 1))
        return table[idx]

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        if dm is None:
            return
        self.compute_mean_mels(dm.train_mels() if isinstance(dm, TrainMels) else dm.train_dataloader())
        self.fit_ridge(dm)

    def on_test_start(self) -> None:
        if self.ridge is None and self._trainer is not None:
            self.fit_ridge(self.trainer.datamodule)

    # -- ridge probe (a linear probe of what the MRI tells) ----------------------------------
    def fit_ridge(self, dm: Any) -> None:
        """Fit the ridge probe on the DataModule's training crops (closed form; the same on every rank)."""
        if self.ridge_probe and isinstance(dm, RidgeCrops):
            self.ridge = RidgeProbe().fit(dm.ridge_items())

    @torch.no_grad()
    def ridge_prediction(self, batch: dict) -> torch.Tensor | None:
        """The probe's mels ``[B, 1, n_mels, F]`` for an evaluation batch (None without a probe or crop times)."""
        if self.ridge is None or "mri_span" not in batch or "crop_start" not in batch:
            return None
        mri, mel = batch["mri"].detach().float().cpu(), batch["mel"]
        frames = mel.shape[-1]
        rows = []
        for i in range(mri.shape[0]):
            pos = frame_positions(float(batch["crop_start"][i]), frames, self.mel_config.hop_length,
                                  tuple(batch["mri_span"][i].tolist()), mri.shape[2])
            rows.append(torch.from_numpy(self.ridge.predict(mri[i, 0], pos)))
        return torch.stack(rows)[:, None].to(mel.device, mel.dtype)

    # -- evaluation ----------------------------------------------------------------------
    def _callback_metrics(self) -> set[str]:
        """Metrics a ``callbacks.metrics.MetricsCallback`` computes (it logs ``val/<name>`` itself)."""
        from callbacks.metrics import MetricsCallback

        if self._trainer is None:
            return set()
        return {m for cb in self.trainer.callbacks if isinstance(cb, MetricsCallback) for m in cb.val_metrics}

    def _stage_metrics(self, prefix: str) -> dict[str, Any]:
        """The module's own metrics for ``prefix`` (DDP-exact): the mean-mel baseline's Corr2D and PESQ (and in the
        test pass its Corr2D after DTW onto each target's timing), and the model's Corr2D unless a callback
        computes it."""
        from articulate.metrics import PESQ, Corr2D
        from articulate.metrics.attention import AttentionMotionModulation, AttentionMotionRatio
        from articulate.metrics.timing import WarpedCorr2D

        if prefix not in self._metrics:
            wanted = {"corr2d_mean_baseline": Corr2D(), "corr2d_ridge": Corr2D(),
                      "attention_motion_ratio": AttentionMotionRatio(),
                      "attention_motion_modulation": AttentionMotionModulation()}
            if "corr2d" not in self._callback_metrics():
                wanted["corr2d"] = Corr2D()
            if self.eval_audio:
                wanted["pesq_mean_baseline"] = PESQ(mode=self.pesq_mode)
                if prefix == "test":  # a Griffin-Lim per item and floor: test only
                    wanted.update(pesq_ridge=PESQ(mode=self.pesq_mode), pesq_oracle=PESQ(mode=self.pesq_mode))
            if prefix == "test":  # the floor with the target's own timing (one DTW per item): test only
                wanted["corr2d_warped_mean_baseline"] = WarpedCorr2D()
            self._metrics[prefix] = {k: m.to(self.device) for k, m in wanted.items()}
        return self._metrics[prefix]

    def griffin_lim_method(self, device: torch.device | str | None = None) -> str:
        return resolve_griffin_lim(self.griffin_lim, device if device is not None else self.device)

    @torch.no_grad()
    def synthesize_audio(self, mel_unit: torch.Tensor, length: int | None = None, method: str | None = None) -> torch.Tensor:
        """Unit mels -> waveforms ``[B, L]`` (Griffin-Lim, ``griffin_lim_iters`` iterations, seeded phase)."""
        return unit_mel_to_audio(mel_unit, self.mel_config, method or self.griffin_lim, self.griffin_lim_iters, length)

    def baseline_audio(self, utterance: torch.Tensor, length: int) -> torch.Tensor:
        """Waveforms of the mean-mel baseline (one Griffin-Lim per utterance id, cached)."""
        rows = []
        for u in utterance.tolist():
            key = (int(u), int(length))
            if key not in self._baseline_audio:
                mel = self.baseline_prediction(torch.tensor([u], device=utterance.device))
                self._baseline_audio[key] = self.synthesize_audio(mel, length=length)[0].cpu()
            rows.append(self._baseline_audio[key])
        return torch.stack(rows).to(utterance.device)

    def evaluation_outputs(self, pred: torch.Tensor, masks: torch.Tensor | None, batch: dict, prefix: str) -> dict:
        """Update the module's metrics and return the outputs dict of the ``callbacks`` protocol."""
        mel = batch["mel"]
        index = batch.get("sample_index")
        metrics = self._stage_metrics(prefix)
        self.log(f"{prefix}/mse", torch.mean((pred.float() - mel.float()) ** 2), batch_size=mel.shape[0], sync_dist=True)
        if "corr2d" in metrics:
            metrics["corr2d"].update(pred, mel, sample_index=index)
        out = {"mel_pred": pred.detach(), "mel_target": mel, "mri": batch["mri"]}
        if masks is not None:
            out["attention"] = masks.detach()[:, 0]
        if index is not None:
            out["sample_index"] = index
        base = self.baseline_prediction(batch["utterance"]) if "utterance" in batch else None
        if base is not None:
            metrics["corr2d_mean_baseline"].update(base.to(mel.dtype), mel, sample_index=index)
            if "corr2d_warped_mean_baseline" in metrics:
                metrics["corr2d_warped_mean_baseline"].update(base.to(mel.dtype), mel, sample_index=index)
        ridge = self.ridge_prediction(batch)
        if ridge is not None:
            metrics["corr2d_ridge"].update(ridge, mel, sample_index=index)
        if masks is not None and "motion_region" in batch:
            for name in ("attention_motion_ratio", "attention_motion_modulation"):
                metrics[name].update(masks.detach()[:, 0], batch["motion_region"], sample_index=index)
            out["motion_region"] = batch["motion_region"]
        if self.eval_audio and "audio" in batch and not self.trainer.sanity_checking:
            audio = batch["audio"]
            out["audio_pred"] = self.synthesize_audio(pred, length=audio.shape[-1])
            out["audio_target"] = audio
            out["sample_rate"] = int(self.sample_rate)
            out["griffin_lim"] = self.griffin_lim_method()
            if base is not None:
                base_audio = self.baseline_audio(batch["utterance"], audio.shape[-1])
                metrics["pesq_mean_baseline"].update(base_audio, audio, int(self.sample_rate), sample_index=index)
            if "pesq_oracle" in metrics:
                oracle = self.synthesize_audio(mel, length=audio.shape[-1])
                metrics["pesq_oracle"].update(oracle, audio, int(self.sample_rate), sample_index=index)
            if ridge is not None and "pesq_ridge" in metrics:
                ridge_audio = self.synthesize_audio(ridge, length=audio.shape[-1])
                metrics["pesq_ridge"].update(ridge_audio, audio, int(self.sample_rate), sample_index=index)
        return out

    def _log_stage_metrics(self, prefix: str) -> None:
        for name, metric in self._metrics.get(prefix, {}).items():
            if not metric.update_called:  # e.g. no probe, no attention or no region: nothing to log
                metric.reset()
                continue
            if not self.trainer.sanity_checking:
                # compute() is collective under DDP: every rank calls it; the value is global.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                    value = float(metric.compute())
                self.log(f"{prefix}/{name}", value, prog_bar=name.startswith("corr2d"), sync_dist=True)
            if prefix == "test":
                self.test_per_sample[name] = metric.per_sample()
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_stage_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_stage_metrics("test")
