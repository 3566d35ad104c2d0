"""The paper's self-residual-attention heterogeneous translator: F, A and D trained together.

Objectives (paper eq. 5): min_F L_rec + beta L_KL + lambda L_F:D;  min_A L_rec;  min_D L_D.

Each training step (manual optimisation, three optimizers):

1. one forward of A and F on the batch (and on its pair partners when the DataModule gives pairs);
2. D step: L_D on real mels vs the detached prediction, D's optimizer steps;
3. F/A step: one backward of L_rec + beta L_KL + lambda L_F:D. A must see only the L_rec gradient:
   the gradient of L_rec with respect to A's output x' is computed first
   (``torch.autograd.grad``, which touches no parameter) and a hook on x' substitutes it during the
   backward, so F receives all three terms and A only L_rec. F's and A's optimizers step; D's does
   not (the grads this backward leaves on D are zeroed before D's next step).

DDP with ``find_unused_parameters=False`` (plain ``--trainer.strategy ddp``) needs every parameter
to receive a gradient in every backward: the D step adds ``0 * sum(p)`` over F's and A's
parameters, so those are marked ready (with zero gradient, never stepped).

The loss terms (:mod:`articulate.losses`), logged as ``train/<name>`` and weighted by ``lambdas`` keyed by
the same names: ``loss_rec`` (L_rec), ``loss_kl`` (L_KL of the pairs, each pair weighted 1 for the same
utterance and 0 otherwise, so ``lambdas.loss_kl`` is the paper's beta) and ``loss_adv`` (F's adversarial term,
``lambdas.loss_adv`` = lambda); D's own loss is ``train/loss_d``. ``LossTerms`` components in ``losses`` add
terms read from the context ``pred``, ``target`` (mels ``[2B, 1, 64, 64]`` with the pair partners), ``mri``
(F's input before A), ``masked`` (x'), ``masks`` (A's, or None), ``mu``, ``logvar``, ``subject`` (F's codes),
``batch_size`` (B), ``same_utterance`` (``[B]``, or None without pairs), ``pitch`` / ``pitch_sd`` (F's pitch head and
its predicted error, or None) with
``pitch_target`` and ``voiced`` (the batch's tracked F0, or None); they reach F (A trains on L_rec
alone, the paper's rule).

``val/corr2d`` is the mean MATLAB corr2 of predicted vs target mels; ``val/corr2d_mean_baseline``
scores the per-utterance mean mel of the training set, the floor any useful model must beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from articulate.errors import InputError
from articulate.losses import LossTerms, weighted_sum
from articulate.networks.mri2audio.losses import AdversarialLoss, ReconstructionLoss
from articulate.signal.mel import MelConfig
from lightning_modules.mri2audio_base import MelEvaluation, MRI2AudioModule


@runtime_checkable
class StartsFromMean(Protocol):
    """A translator that can start its output at the mean training mel (the frame translator)."""

    def init_output_bias(self, mean_output: torch.Tensor) -> None: ...


class MRI2AudioTranslator(MRI2AudioModule):
    """F (translator), optional A (attention) and D (discriminator), each with its own optimizer.

    Args:
        translator: F, e.g. :class:`articulate.networks.mri2audio.translator.HeterogeneousTranslator`.
        attention: A, or None for the "w/o attention" ablation.
        discriminator: D (returns logits), or None for the "w/o GAN" ablation.
        reconstruction_loss, pairwise_loss, adversarial_loss: loss components (defaults: eq. 1 as a
            per-sample squared L2 norm, none, non-saturating GAN loss). ``pairwise_loss=None`` is the "w/o
            pair-wise disentanglement" ablation.
        lambdas: the weight of each loss term by name (module docstring), e.g. the paper's
            ``{loss_rec: 1, loss_kl: 0.5, loss_adv: 0.5}``; a term without a weight is logged only.
        losses: extra loss components (:class:`articulate.losses.LossTerms`) on the context above.
        optimizers: ``OptimizerCallable`` per network: ``translator``, ``attention`` (with A), ``discriminator``
            (with D).
        lr_scheduler: an ``LRSchedulerCallable`` applied to every optimizer, stepped once per batch; None = constant.
        mel, input_shape, intensity_percentiles, evaluation: see
            :class:`~lightning_modules.mri2audio_base.MRI2AudioModule`.

    A translator with ``init_output_bias`` (:class:`StartsFromMean`) starts from the mean training mel at the
    start of a fresh fit (not a resume).
    """

    builtin_terms = ("loss_rec", "loss_kl", "loss_adv")

    def __init__(
        self,
        translator: nn.Module,
        attention: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        reconstruction_loss: nn.Module | None = None,
        pairwise_loss: nn.Module | None = None,
        adversarial_loss: nn.Module | None = None,
        lambdas: dict[str, float] | None = None,
        losses: list[LossTerms] | None = None,
        optimizers: dict[str, OptimizerCallable] | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        mel: MelConfig | None = None,
        input_shape: Sequence[int] | None = None,
        intensity_percentiles: Sequence[float] | None = None,
        evaluation: MelEvaluation = MelEvaluation(),
    ):
        super().__init__(mel, input_shape, intensity_percentiles, evaluation)
        self.save_config()
        self.automatic_optimization = False
        self.translator = translator
        self.attention = attention
        self.discriminator = discriminator
        self.reconstruction_loss = reconstruction_loss if reconstruction_loss is not None else ReconstructionLoss()
        self.pairwise_loss = pairwise_loss
        self.adversarial_loss = adversarial_loss if adversarial_loss is not None else AdversarialLoss()
        self.init_losses(lambdas, losses)
        if attention is not None and self.lambdas and "loss_rec" not in self.lambdas:
            raise ValueError("MRI2AudioTranslator: A trains on L_rec alone; lambdas must weigh loss_rec")
        self._optimizers = dict(optimizers or {})
        unknown = [k for k in self._optimizers if k not in ("translator", "attention", "discriminator")]
        if unknown:
            raise ValueError(f"MRI2AudioTranslator: optimizers for {unknown}: the networks are translator, attention, "
                             "discriminator")
        self.lr_scheduler = lr_scheduler

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = self.trainer.datamodule if self._trainer is not None else None
        for component in self.losses:  # e.g. PitchLoss needs the DataModule's pitch targets: say so before training
            for option, value in getattr(component, "needs_data", {}).items():
                if dm is not None and hasattr(dm, option) and getattr(dm, option) != value:
                    raise InputError(None, f"{type(component).__name__} needs data.init_args.{option}: {str(value).lower()}")

    def on_fit_start(self) -> None:
        super().on_fit_start()
        fresh = self.trainer.ckpt_path is None
        if fresh and isinstance(self.translator, StartsFromMean) and self.mean_mel_all is not None:
            self.translator.init_output_bias(self.mean_mel_all)

    # -- inference -----------------------------------------------------------------------
    def networks(self) -> dict[str, Any]:
        return {"translator": self.translator, "attention": self.attention}

    def attend(self, mri: torch.Tensor, region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A's masked frames and masks (the input itself and None without A)."""
        if self.attention is None:
            return mri, None
        return self.attention(mri)

    def forward(self, mri: torch.Tensor) -> torch.Tensor:
        """MRI ``[B, 1, T, H, W]`` in [0, 1] -> unit-scale mel ``[B, 1, 64, 64]`` (u = mu in eval mode)."""
        x, _ = self.attend(mri)
        return self.translator(x).mel

    def predict_with_masks(self, mri: torch.Tensor, region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, masks = self.attend(mri, region)
        return self.translator(x).mel, masks

    # -- optimisation --------------------------------------------------------------------
    @property
    def optimizer_names(self) -> list[str]:
        names = ["translator"]
        if self.attention is not None:
            names.append("attention")
        if self.discriminator is not None:
            names.append("discriminator")
        return names

    def optimizer_groups(self) -> dict[str, tuple[Any, OptimizerCallable]]:
        missing = [name for name in self.optimizer_names if name not in self._optimizers]
        if missing:
            raise ValueError(f"MRI2AudioTranslator: no optimizer for {', '.join(missing)} (model.init_args.optimizers)")
        nets = {"translator": self.translator, "attention": self.attention, "discriminator": self.discriminator}
        return {name: (nets[name].parameters(), self._optimizers[name]) for name in self.optimizer_names}

    def _step_schedulers(self) -> None:
        """Manual optimisation: Lightning steps no scheduler, so each batch does (one step per batch)."""
        if self.lr_scheduler is None:
            return
        scheds = self.lr_schedulers()
        for sched in scheds if isinstance(scheds, (list, tuple)) else [scheds]:
            sched.step()

    def _named_optimizers(self) -> dict[str, Any]:
        opts = self.optimizers()
        opts = opts if isinstance(opts, (list, tuple)) else [opts]
        return dict(zip(self.optimizer_names, opts))

    @staticmethod
    def _zero_touch(*modules: nn.Module | None) -> torch.Tensor | float:
        """0 * sum of the parameters: gives each a (zero) gradient so DDP sees it used."""
        terms = [p.sum() for m in modules if m is not None for p in m.parameters() if p.requires_grad]
        return torch.stack(terms).sum() * 0.0 if terms else 0.0

    def use_pairs(self, batch: dict) -> bool:
        return "mri_pair" in batch and "mel_pair" in batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        opts = self._named_optimizers()
        mri, mel = batch["mri"], batch["mel"]
        self.note_input(mri)
        paired = self.use_pairs(batch)
        region = batch.get("motion_region")
        if paired:
            mri = torch.cat([mri, batch["mri_pair"]])
            mel = torch.cat([mel, batch["mel_pair"]])
            region = None if region is None or "motion_region_pair" not in batch else \
                torch.cat([region, batch["motion_region_pair"]])
        b = batch["mri"].shape[0]
        pitch_target, voiced = batch.get("pitch"), batch.get("voiced")
        if paired and pitch_target is not None:
            pitch_target = torch.cat([pitch_target, batch["pitch_pair"]])
            voiced = torch.cat([voiced, batch["voiced_pair"]])

        x, masks = self.attend(mri, region)
        out = self.translator(x)
        pred = out.mel

        # 1. Discriminator: real vs (detached) generated mels.
        D = self.discriminator
        if D is not None:
            real_logits, fake_logits = D(mel), D(pred.detach())
            loss_d = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
            self.check_finite(loss_d=loss_d)
            opt_d = opts["discriminator"]
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d + self._zero_touch(self.translator, self.attention))
            opt_d.step()
            self.log("train/loss_d", loss_d.detach(), batch_size=b)
            self.log("train/d_real", torch.sigmoid(real_logits.detach()).mean(), batch_size=b)
            self.log("train/d_fake", torch.sigmoid(fake_logits.detach()).mean(), batch_size=b)

        # 2. Translator (all terms) and attention (L_rec only).
        loss_rec = self.reconstruction_loss(pred, mel)
        terms = {"loss_rec": loss_rec}
        same = batch["same_utterance"].to(pred.dtype) if paired else None
        if paired and self.pairwise_loss is not None:
            terms["loss_kl"] = self.pairwise_loss(out.mu[:b], out.logvar[:b], out.mu[b:], out.logvar[b:], weight=same)
        if D is not None:
            terms["loss_adv"] = self.adversarial_loss.generator_loss(D(pred))
        context = {"pred": pred, "target": mel, "mri": mri, "masked": x, "masks": masks, "mu": out.mu,
                   "logvar": out.logvar, "subject": out.subject, "batch_size": b, "same_utterance": same,
                   "pitch": out.pitch, "pitch_sd": out.pitch_sd, "pitch_target": pitch_target, "voiced": voiced}
        loss = self.objective(self.add_terms(terms, context), "train", b, prog_bar=("loss_rec",))
        if self.attention is not None:
            rec = weighted_sum({"loss_rec": loss_rec}, self.lambdas)  # L_rec as it enters the sum
            if loss is not rec:  # other terms: A gets L_rec's gradient alone
                (grad_rec,) = torch.autograd.grad(rec, x, retain_graph=True)
                x.register_hook(lambda _g: grad_rec)
        for name in ("translator", "attention"):
            if name in opts:
                opts[name].zero_grad(set_to_none=True)
        self.manual_backward(loss)
        for name in ("translator", "attention"):
            if name in opts:
                opts[name].step()

        self._step_schedulers()
        return loss.detach()

    # -- evaluation ----------------------------------------------------------------------
    def _eval_step(self, batch: dict, prefix: str) -> dict:
        x, masks = self.attend(batch["mri"], batch.get("motion_region"))
        out = self.translator(x)
        pred = out.mel
        self.log(f"{prefix}/loss_rec", self.reconstruction_loss(pred, batch["mel"]), batch_size=pred.shape[0], sync_dist=True)
        if out.pitch is not None and "pitch" in batch:
            self.log_pitch_error(out.pitch, batch["pitch"], batch["voiced"], prefix)
            if prefix == "test" and getattr(self.translator, "draws_given_pitch", False):
                self.score_given_pitch(self.translator(x, pitch=batch["pitch"]).mel, batch)
        return self.evaluation_outputs(pred, masks, batch, prefix)

    def score_given_pitch(self, pred: torch.Tensor, batch: dict) -> None:
        """``test/corr2d_given_pitch`` and ``test/pesq_given_pitch``: F's mels drawn at the F0 tracked from the true
        audio instead of its own reading, the ceiling of its pitch head."""
        from articulate.metrics import PESQ, Corr2D

        metrics = self._stage_metrics("test")
        if "corr2d_given_pitch" not in metrics:
            metrics["corr2d_given_pitch"] = Corr2D().to(self.device)
            if self.eval_audio:
                metrics["pesq_given_pitch"] = PESQ(mode=self.pesq_mode).to(self.device)
        index = batch.get("sample_index")
        metrics["corr2d_given_pitch"].update(pred, batch["mel"], sample_index=index)
        if "pesq_given_pitch" in metrics and "audio" in batch:
            audio = batch["audio"]
            wave = self.synthesize_audio(pred, length=audio.shape[-1])
            metrics["pesq_given_pitch"].update(wave, audio, int(self.sample_rate), sample_index=index)

    def log_pitch_error(self, pitch: torch.Tensor, target: torch.Tensor, voiced: torch.Tensor, prefix: str) -> None:
        """``<stage>/pitch_mse_semitones``: the pitch head's mean squared error (semitones^2) on the voiced frames,
        weighted by their count, so that the epoch value is over every voiced frame of the split (its root: the RMS)."""
        n = int(voiced.sum())
        if n:
            mse = ((pitch - target.to(pitch.dtype)) ** 2)[voiced.bool()].mean()
            self.log(f"{prefix}/pitch_mse_semitones", mse, batch_size=n, sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        pred, masks = self.predict_with_masks(batch["mri"], batch.get("motion_region"))
        return {"mel": pred, "masks": masks}


class OracleMaskTranslator(MRI2AudioTranslator):
    """A ceiling for A, not a model (phantom only; ``configs/mri2audio/oracle_mask.yaml``): no A; F reads
    ``x' = m x`` with the mask ``m = oracle_mask`` outside the phantom's true moving-articulator region and 1 inside
    it (needs ``--data.init_args.motion_regions all``). What a perfect motion mask is worth to F, and the attention
    ratio such a mask scores. Inference (a checkpoint) runs F on the unmasked frames: there is no region there.

    Args:
        oracle_mask: the mask outside the region, in [0, 1].
        the rest: as :class:`MRI2AudioTranslator` (``attention`` must be None).
    """

    def __init__(self, translator: nn.Module, attention: nn.Module | None = None, discriminator: nn.Module | None = None,
                 reconstruction_loss: nn.Module | None = None, pairwise_loss: nn.Module | None = None,
                 adversarial_loss: nn.Module | None = None, lambdas: dict[str, float] | None = None,
                 losses: list[LossTerms] | None = None, optimizers: dict[str, OptimizerCallable] | None = None,
                 lr_scheduler: LRSchedulerCallable | None = None, mel: MelConfig | None = None,
                 input_shape: Sequence[int] | None = None, intensity_percentiles: Sequence[float] | None = None,
                 evaluation: MelEvaluation = MelEvaluation(), oracle_mask: float = 0.2):
        if attention is not None or not 0.0 <= float(oracle_mask) <= 1.0:
            raise ValueError(f"oracle_mask needs attention: null and a value in [0, 1], got {oracle_mask}")
        super().__init__(translator, None, discriminator, reconstruction_loss, pairwise_loss, adversarial_loss, lambdas,
                         losses, optimizers, lr_scheduler, mel, input_shape, intensity_percentiles, evaluation)
        self.save_config()  # this class's arguments (the parent's call saw its own frame)
        self.oracle_mask = float(oracle_mask)

    def attend(self, mri: torch.Tensor, region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if region is None:
            raise ValueError("oracle_mask needs the batch's motion_region (--data.init_args.motion_regions all)")
        mask = self.oracle_mask + (1.0 - self.oracle_mask) * region.to(mri.dtype).reshape(mri.shape)
        return mask * mri, mask
