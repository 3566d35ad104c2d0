"""Audio(-textual) cascaded EDM for speech -> ultrasound tongue video (the wav2uti paper): training.

Components (all chosen in YAML): ``audio_encoder`` (frame-aligned acoustic features), optional
``text_encoder`` (None = the audio-only model), ``fusion`` (-> condition ``[B, T, cond_dim]``),
``denoiser`` (``EDMPrecond`` wrapping the ``VideoUNet``), ``loss`` (``EDMLoss``) and ``sampler``
(``HeunSampler``). Sampling itself lives in the inference object
(:class:`articulate.inference.wav2uti.DiffusionGenerator`, :meth:`to_inference`), which validation,
test, ``synthesize-uti`` and the tests share.

* ``cascade.stage="base"``: video at the data resolution (64 px in the paper's cascade) from noise.
* ``cascade.stage="super_resolution"``: the network also sees the low-res video (the target downsampled to
  ``low_res_size`` by area averaging, upsampled back bilinearly) with Gaussian noise augmentation
  of level ``aug_sigma ~ U(0, aug_sigma_max)`` in training and ``sample_aug_sigma`` at sampling;
  ``cascade.low_res_ckpt`` names the base stage: with it, ``test`` evaluates the whole cascade (the SR
  stage refines the base stage's samples, as at inference); without it, or at validation, the
  SR stage refines the downsampled ground truth (an oracle low-res input, cheaper to watch).
* Classifier-free guidance: the whole condition is dropped (all-False ``cond_mask``) with
  probability ``guidance.drop_prob`` in training; ``guidance.scale`` at sampling (1 = off). With
  ``guidance.candidates`` (scales) and/or ``guidance.start_candidates`` (the sampler's start level,
  ``HeunSampler.sigma_start``; ``null`` = the full schedule) the sampling is chosen on the validation speakers
  when the test starts (never on the test ones): each (scale, start) pair samples the same validation clips
  from the same noise, and the one whose tongue surfaces are closest (contour MSD vs the true surface on the
  phantom, else vs the tracked real frames, else RMSE without a tracker) among those whose samples keep at least
  ``guidance.min_detail`` of the real frames' fine detail (``detail_ratio``: a low start or a high scale draws
  the conditional mean, smooth) is kept and logged as ``test/guidance_scale`` and ``test/sampler_start``.
* Loss (:mod:`articulate.losses`): the term ``loss_edm`` (the mean of ``loss``'s per-element EDM loss), weighted by
  ``lambdas`` and logged as ``<stage>/loss_edm`` beside the sum ``<stage>/loss``; ``LossTerms`` components in
  ``losses`` add terms read from the context ``denoised`` (the denoiser's output D(x0 + sigma n; sigma)) and
  ``target`` (x0: the clips, standardised when a ``standardizer`` is set) ``[B, 1, T, R, R]``, ``sigma`` ``[B]`` (the
  sampled noise level), ``per_element`` (the weighted squared error), ``video`` (the clips on the [-1, 1] scale),
  ``audio_feats``, ``cond``, ``cond_mask`` (the fused condition, after classifier-free dropout) and ``batch_size``.
  ``optimizer`` and ``lr_scheduler``: LightningCLI callables from the config (Adam, constant rate), on every
  trainable weight.
* EMA of the weights: Lightning's ``EMAWeightAveraging`` callback (configs/wav2uti.yaml); it swaps the
  averaged weights in for validation and writes them as the checkpoint's ``state_dict``.
* Validation: EDM loss with a fixed noise draw (comparable across epochs) on every batch, and
  ``evaluation.val_clips`` clips sampled with the Heun sampler, scored with RMSE and PSNR.
* ``baselines``, ``evaluation``: the floors and the contour measure scored
  beside the model (:class:`lightning_modules.wav2uti_base.Wav2UTIModule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from articulate.baselines.wav2uti import RidgeProbe
from articulate.diffusion import EDMLoss, HeunSampler
from articulate.errors import InputError
from articulate.inference.wav2uti import DiffusionGenerator, fuse_condition, timing_mismatch
from articulate.losses import LossTerms
from articulate.transforms.clips import ClipGeometry
from articulate.transforms.video import resize_video
from articulate.utils.settings import as_settings
from lightning_modules.wav2uti_base import ClipSource, VideoEvaluation, Wav2UTIModule

__all__ = ["Cascade", "Guidance", "Wav2UTIDiffusion", "load_base_stage"]


def load_base_stage(path: str) -> DiffusionGenerator:
    """The base stage of a cascade from its checkpoint (the inference object: not trained, not saved)."""
    return DiffusionGenerator.from_checkpoint(path)


@dataclass(frozen=True)
class Cascade:
    """The stage of the cascade this model is (``model.init_args.cascade``; module docstring).

    Args:
        stage: "base" (video from noise at the data resolution) or "super_resolution" (also sees a low-res video).
        low_res_size: the super-resolution stage's input size.
        aug_sigma_max: noise augmentation of the low-res input in training, ``U(0, aug_sigma_max)``.
        sample_aug_sigma: its level at sampling.
        low_res_ckpt: the base stage's checkpoint: the test then scores the whole cascade.
    """

    stage: Literal["base", "super_resolution"] = "base"
    low_res_size: int = 64
    aug_sigma_max: float = 0.5
    sample_aug_sigma: float = 0.05
    low_res_ckpt: str | None = None


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance (``model.init_args.guidance``; module docstring).

    Args:
        drop_prob: probability of dropping the whole condition in training.
        scale: the sampling scale (1 = off).
        candidates: scales tried on the validation speakers when the test starts; the best replaces ``scale``.
        start_candidates: sampler start levels (``HeunSampler.sigma_start``, ``null`` = the full schedule) tried
            with each scale; the best replaces the sampler's. On the command line a list holding ``null`` goes in
            the group's form: ``--model.init_args.guidance={start_candidates: [null, 0.3]}``.
        min_detail: a candidate whose validation samples keep less than this share of the real frames' fine
            detail (mean ``detail_ratio``) is not chosen (unless none keeps it: then the one that keeps most).
    """

    drop_prob: float = 0.1
    scale: float = 1.0
    candidates: list[float] | None = None
    start_candidates: list[float | None] | None = None
    min_detail: float = 0.0


class Wav2UTIDiffusion(Wav2UTIModule):
    inference_class = "articulate.inference.wav2uti.DiffusionGenerator"
    builtin_terms = ("loss_edm",)

    def __init__(
        self,
        denoiser: nn.Module,
        audio_encoder: nn.Module,
        fusion: nn.Module,
        text_encoder: nn.Module | None = None,
        loss: EDMLoss | None = None,
        sampler: HeunSampler | None = None,
        standardizer: nn.Module | None = None,
        clips: ClipGeometry = ClipGeometry(),
        cascade: Cascade = Cascade(),
        guidance: Guidance = Guidance(),
        lambdas: dict[str, float] | None = None,
        losses: list[LossTerms] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        baselines: RidgeProbe | None = None,
        evaluation: VideoEvaluation = VideoEvaluation(val_clips=4),
    ):
        super().__init__(audio_encoder, text_encoder, clips, baselines, evaluation)
        cascade, guidance = as_settings(Cascade, cascade), as_settings(Guidance, guidance)
        if cascade.stage not in ("base", "super_resolution"):
            raise ValueError(f"cascade.stage must be 'base' or 'super_resolution', got {cascade.stage!r}")
        if cascade.stage == "super_resolution" and standardizer is not None and standardizer.needs_features:
            raise ValueError("a standardizer that reads the speech (SpeechPriorStandardizer) is for the base stage")
        self.save_config()
        self.denoiser, self.fusion, self.standardizer = denoiser, fusion, standardizer
        self.loss_fn = loss if loss is not None else EDMLoss(sigma_data=float(getattr(denoiser, "sigma_data", 0.25)))
        self.sampler = sampler if sampler is not None else HeunSampler(num_steps=32)
        self.cascade = cascade
        self.stage, self.low_res_size = cascade.stage, int(cascade.low_res_size)
        self.guidance = guidance
        self.guidance_scale = float(guidance.scale)  # the sampling scale; choose_guidance may replace it at test
        self.init_losses(lambdas, losses)
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.guidance_scores: dict[str, Any] | None = None  # validation scores of the candidates (choose_guidance)

    # -- inference -------------------------------------------------------------------------
    def inference_init(self) -> dict[str, Any]:
        return {"denoiser": self.denoiser, "audio_encoder": self.audio_encoder, "fusion": self.fusion,
                "text_encoder": self.text_encoder, "sampler": self.sampler, "stage": self.stage,
                "resolution": self.resolution, "clip_frames": self.clip_frames, "fps": self.fps,
                "low_res_size": self.low_res_size, "sample_aug_sigma": float(self.cascade.sample_aug_sigma),
                "guidance_scale": self.guidance_scale, "long_form_hop": None,
                "condition_context": self.condition_context, "standardizer": self.standardizer}

    def to_inference(self) -> DiffusionGenerator:
        self._encoders_to_device()
        return DiffusionGenerator(**self.inference_init())

    @torch.no_grad()
    def generate(self, audio_feats: torch.Tensor, text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                 low_res: torch.Tensor | None = None, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """Video ``[B, 1, T, R, R]`` in [-1, 1] from the current weights (see DiffusionGenerator.generate)."""
        return self.to_inference().generate(audio_feats, text, text_mask, low_res=low_res, generator=generator, **options)

    # -- cascade ---------------------------------------------------------------------------
    def low_res_input(self, video: torch.Tensor, aug_sigma: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The SR stage's conditioning video: downsample (area), upsample (bilinear), add noise."""
        return self.to_inference().upsample_low_res(resize_video(video, self.low_res_size, "area"), aug_sigma, generator)

    def base_stage(self) -> DiffusionGenerator | None:
        """The base stage named by ``low_res_ckpt`` (super-resolution stage only), loaded once and kept
        off the module tree: it is neither trained nor saved with this stage's checkpoint."""
        path = self.cascade.low_res_ckpt
        if self.stage != "super_resolution" or not path:
            return None
        base = self.off_tree.base_stage
        if base is None:
            base = load_base_stage(path)
            if not isinstance(base, DiffusionGenerator) or base.stage != "base":
                raise InputError(path, "low_res_ckpt must be a base-stage diffusion checkpoint")
            problem = timing_mismatch(base, self.to_inference())
            if not problem and base.condition_context != self.condition_context:
                problem = (f"the base stage reads {base.condition_context} frames of speech context, this stage's data "
                           f"{self.condition_context}: train both with the same condition_context")
            if problem:
                raise InputError(path, problem)
            self.off_tree.base_stage = base
        return base.to(self.device)

    @torch.no_grad()
    def cascade_low_res(self, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        """The base stage's samples for ``batch`` at ``low_res_size``: what the SR stage sees at test time."""
        base = self.base_stage()
        if "audio" not in batch:
            raise ValueError("cascaded evaluation needs the raw audio in the batch")
        feats = base.audio_features(batch["audio"], n_frames=batch["video"].shape[2] + 2 * base.condition_context)
        text, tmask = base.text_features(list(batch["text"]))
        return self.to_low_res(base.generate(feats, text, tmask, generator=generator))

    def to_low_res(self, video: torch.Tensor) -> torch.Tensor:
        return video if video.shape[-1] == self.low_res_size else resize_video(video, self.low_res_size, "area")

    # -- training --------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        # the standardiser's mean frame and scale: from the training frames, once (a resumed fit restores them)
        dm = self.trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and self.standardizer is not None and not bool(self.standardizer.fitted) and isinstance(dm, ClipSource):
            clips = dm.baseline_clips("train")
            keep = torch.linspace(0, len(clips) - 1, min(len(clips), 20000 // self.clip_frames + 1)).round().long()
            if self.standardizer.needs_features:
                self.standardizer.fit(self._feature_pairs(clips, keep.unique().tolist()), self.condition_context)
            else:
                self.standardizer.fit(torch.cat([clips[int(i)]["video"][0] for i in keep.unique()]))

    def _feature_pairs(self, clips, index: list[int], batch: int = 32):
        """``(speech features, video)`` of the given training clips, a batch at a time (the standardizer's fit)."""
        from datamodules.clips import collate_clips

        for a in range(0, len(index), batch):
            b = collate_clips([clips[int(i)] for i in index[a:a + batch]])
            with torch.no_grad():
                yield self.audio_features({k: (v.to(self.device) if isinstance(v, torch.Tensor) else v)
                                           for k, v in b.items()}), b["video"]

    def _loss(self, batch: dict[str, Any], generator: torch.Generator | None = None, drop: bool = True) -> torch.Tensor:
        """The EDM loss of a batch (the term ``loss_edm``)."""
        return self._edm(batch, generator, drop)[0]

    def _edm(self, batch: dict[str, Any], generator: torch.Generator | None = None, drop: bool = True
             ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The EDM loss of a batch and the context the ``losses`` components read (module docstring)."""
        video = batch["video"]
        B = video.shape[0]
        text, tmask = self.text_features(batch)
        feats = self.audio_features(batch)
        cond, cmask = fuse_condition(self.fusion, feats, text, tmask, self.condition_context)
        if drop and self.guidance.drop_prob > 0:
            keep = torch.rand(B, device=video.device, generator=generator) >= self.guidance.drop_prob
            cmask = cmask & keep[:, None]
        kw: dict[str, Any] = {}
        if self.stage == "super_resolution":
            aug = torch.rand(B, device=video.device, generator=generator) * self.cascade.aug_sigma_max
            kw = {"low_res": self.low_res_input(video, aug, generator), "aug_sigma": aug}
        x0 = self.standardizer(video, feats, self.condition_context) if self.standardizer is not None else video
        seen: dict[str, torch.Tensor] = {}

        def denoise(x: torch.Tensor, sigma: torch.Tensor, **kw: Any) -> torch.Tensor:
            seen["denoised"], seen["sigma"] = self.denoiser(x, sigma, **kw), sigma  # what the loss compares, for the context
            return seen["denoised"]

        per_elem = self.loss_fn(denoise, x0, cond=cond, cond_mask=cmask, generator=generator, **kw)
        context = {**seen, "target": x0, "per_element": per_elem, "video": video, "audio_feats": feats,
                   "cond": cond, "cond_mask": cmask, "batch_size": B}
        return per_elem.mean(), context

    def _objective(self, batch: dict[str, Any], stage: str, generator: torch.Generator | None = None,
                   drop: bool = True) -> torch.Tensor:
        loss_edm, context = self._edm(batch, generator, drop)
        terms = self.add_terms({"loss_edm": loss_edm}, context)
        return self.objective(terms, stage, batch["video"].shape[0], prog_bar=("loss",) if stage == "train" else ())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._objective(batch, "train")

    def optimizer_groups(self) -> dict[str, tuple[Any, OptimizerCallable]]:
        if self.optimizer is None:
            raise ValueError("Wav2UTIDiffusion: no optimizer (model.init_args.optimizer)")
        # every trainable weight (denoiser, fusion, a trainable text encoder, components), in the module's order
        return {"model": ([p for p in self.parameters() if p.requires_grad], self.optimizer)}

    # -- guidance chosen on validation ----------------------------------------------------------
    def on_test_start(self) -> None:
        super().on_test_start()
        if (self.guidance.candidates or self.guidance.start_candidates) and self.stage == "base":
            self.choose_guidance()

    @torch.no_grad()
    def choose_guidance(self, max_clips: int = 8) -> tuple[float, float | None]:
        """Set ``guidance_scale`` and the sampler's start level to the candidate pair whose samples of the first
        validation clips are closest to them, among those that keep ``min_detail`` of the real frames' detail
        (see the module docstring); the validation speakers' clips only. Returns (scale, start)."""
        from lightning_modules.wav2uti_eval import summarise

        dm = self.trainer.datamodule
        batches, n = [], 0
        for batch in dm.val_dataloader() or []:
            batches.append({k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()})
            n += batch["video"].shape[0]
            if n >= max_clips:
                break
        if not batches:
            return self.guidance_scale, self.sampler.sigma_start
        base = self.sampler
        scales = [float(c) for c in self.guidance.candidates or [self.guidance_scale]]
        starts = list(self.guidance.start_candidates or [base.sigma_start])
        rows_of = []
        for g in scales:
            for st in starts:
                self.guidance_scale, self.sampler = g, base.replace(sigma_start=st)  # HeunSampler casts it
                rows = [self._scorer.rows(b, self.predict_clips(b, b["video"].shape[0], cascade=False).clamp(-1, 1),
                                          b["video"], {}, self._scorer.tracker is not None) for b in batches]
                values = summarise(torch.cat(rows).numpy(), "val", with_model_pixels=True)
                key = next(k for k in ("val/contour_msd_truth", "val/contour_msd", "val/rmse") if k in values)
                rows_of.append({"scale": g, "start": self.sampler.sigma_start, "score": values[key],
                                "detail": values.get("val/detail_ratio", float("nan"))})
        # NaN detail (validation frames without any) does not exclude a candidate
        keeps = [r for r in rows_of if not r["detail"] < self.guidance.min_detail]
        best = min(keeps, key=lambda r: r["score"]) if keeps else max(rows_of, key=lambda r: r["detail"])
        self.guidance_scale, self.sampler = best["scale"], base.replace(sigma_start=best["start"])
        self.guidance_scores = {"measure": key, "min_detail": self.guidance.min_detail, "candidates": rows_of}
        table = "; ".join(f"scale {r['scale']:g} start {r['start']}: {r['score']:.4f} detail {r['detail']:.3f}"
                          for r in rows_of)
        rank_zero_info(f"sampling chosen on the validation clips ({key}, detail >= {self.guidance.min_detail:g}): "
                       f"scale {best['scale']:g}, start {best['start']} [{table}]")
        return best["scale"], best["start"]

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.guidance_scores is not None:
            self.log("test/guidance_scale", self.guidance_scale)
            self.log("test/sampler_start", self.sampler.sigma_top)

    # -- evaluation ------------------------------------------------------------------------
    def log_eval_loss(self, batch, batch_idx, prefix, pred) -> None:
        g = torch.Generator(device=self.device).manual_seed(batch_idx)
        self._objective(batch, prefix, generator=g, drop=False)

    def predict_clips(self, batch: dict[str, Any], n: int, cascade: bool) -> torch.Tensor:
        return self._sample_batch(batch, n, cascade)[0]

    def _sample_batch(self, batch: dict[str, Any], n: int, cascade: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples for the first ``n`` items and their targets. Super-resolution stage: from the base
        stage's samples when ``cascade`` and ``low_res_ckpt`` is set, else from the downsampled ground truth."""
        sub = {k: (v[:n] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}
        g = torch.Generator(device=self.device).manual_seed(0)
        text, tmask = self.text_features(sub)
        low = None
        if self.stage == "super_resolution":
            if cascade and self.base_stage() is not None:
                low = self.cascade_low_res(sub, torch.Generator(device=self.device).manual_seed(1))
            else:
                low = self.to_low_res(sub["video"])
        return self.generate(self.audio_features(sub), text, tmask, low_res=low, generator=g), sub["video"]
