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

``val/corr2d`` is the mean MATLAB corr2 of predicted vs target mels; ``val/corr2d_mean_baseline``
scores the per-utterance mean mel of the training set, the floor any useful model must beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from articulate.networks.mri2audio.losses import AdversarialLoss, ReconstructionLoss
from articulate.signal.mel import MelConfig
from lightning_modules.mri2audio_base import MRI2AudioModule


def paper_adam(params, lr: float) -> torch.optim.Optimizer:
    """The optimizer used when none is configured: Adam, beta1 = 0.5 (the paper's "momentum 0.5")."""
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


class MRI2AudioTranslator(MRI2AudioModule):
    """F (translator), optional A (attention) and D (discriminator), each with its own optimizer.

    Args:
        translator: F, e.g. :class:`articulate.networks.mri2audio.translator.HeterogeneousTranslator`.
        attention: A, or None for the "w/o attention" ablation.
        discriminator: D (returns logits), or None for the "w/o GAN" ablation.
        reconstruction_loss, pairwise_loss, adversarial_loss: loss components (defaults: eq. 1 as a
            per-sample squared L2 norm, eq. 2, non-saturating GAN loss). ``pairwise_loss=None`` or
            ``beta=0`` is the "w/o pair-wise disentanglement" ablation.
        beta: weight of L_KL for same-utterance pairs (0 for different utterances, as the paper).
        adversarial_weight: lambda.
        optimizer_translator / optimizer_attention / optimizer_discriminator: ``OptimizerCallable``;
            None gives Adam(lr 1e-3 / 1e-3 / 1e-4, betas (0.5, 0.999)).
        mel, input_shape, intensity_percentiles, eval_audio, griffin_lim_iters, pesq_mode, griffin_lim, ridge_probe:
            see :class:`~lightning_modules.mri2audio_base.MRI2AudioModule`.
        init_output_bias: when F has a per-pixel ``output_bias`` (not the paper's default), set it
            at the start of a fresh fit (not a resume) to the logit of the mean training mel.
        mask_sparsity: weight of the mean of A's masks in A's loss (not in the paper; 0 = the paper's A,
            trained on L_rec alone). L_rec alone gives A no reason to dim what F can learn to ignore (the
            static tag grid, and the background, where ``x' = a x`` has no gradient at all), so its masks
            stay near their start; a price per unit of mask makes A keep open only what lowers L_rec.
        mask_sparsity_start: the epoch from which the price applies. From the first step it closes the moving
            region first, before F has learnt to read it (A's weights act where the residual is non-zero, so
            that is where a price on the mean mask moves the mask most): F has to read the motion before
            closing it costs L_rec anything. On the QUICK phantom the moving region still dims first, warm-up or
            not (docs/experiments/mri2audio.md).
        oracle_mask: a ceiling for A, not a model (phantom only): without A (``attention: null``), F reads
            ``x' = m x`` with the mask ``m = oracle_mask`` outside the phantom's true moving-articulator region
            and 1 inside it (needs ``--data.init_args.motion_regions all``). What a perfect motion mask is
            worth to F, and the attention ratio such a mask scores.
        lr_schedule: ``"constant"`` (the paper: Adam at a fixed rate) or ``"cosine"`` (ours): every optimizer's rate
            follows half a cosine from its configured value to 0 over the fit's batches
            (``trainer.estimated_stepping_batches``, so it follows ``max_epochs`` with no second setting).
    """

    def __init__(
        self,
        translator: nn.Module,
        attention: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        reconstruction_loss: nn.Module | None = None,
        pairwise_loss: nn.Module | None = None,
        adversarial_loss: nn.Module | None = None,
        beta: float = 0.5,
        adversarial_weight: float = 0.5,
        optimizer_translator: OptimizerCallable | None = None,
        optimizer_attention: OptimizerCallable | None = None,
        optimizer_discriminator: OptimizerCallable | None = None,
        mel: MelConfig | None = None,
        input_shape: Sequence[int] | None = None,
        intensity_percentiles: Sequence[float] | None = None,
        eval_audio: bool = True,
        griffin_lim_iters: int = 32,
        pesq_mode: Literal["wb", "nb"] = "wb",
        griffin_lim: Literal["auto", "torch", "librosa"] = "librosa",
        init_output_bias: bool = True,
        ridge_probe: bool = True,
        mask_sparsity: float = 0.0,
        mask_sparsity_start: int = 0,
        oracle_mask: float | None = None,
        lr_schedule: Literal["constant", "cosine"] = "constant",
    ):
        super().__init__(mel, input_shape, intensity_percentiles, eval_audio, griffin_lim_iters, pesq_mode, griffin_lim,
                         ridge_probe)
        self.save_config()
        self.automatic_optimization = False
        self.init_output_bias = bool(init_output_bias)
        self.translator = translator
        self.attention = attention
        self.discriminator = discriminator
        self.reconstruction_loss = reconstruction_loss if reconstruction_loss is not None else ReconstructionLoss()
        self.pairwise_loss = pairwise_loss
        self.adversarial_loss = adversarial_loss if adversarial_loss is not None else AdversarialLoss()
        self.beta = float(beta)
        self.adversarial_weight = float(adversarial_weight)
        if mask_sparsity < 0:
            raise ValueError(f"mask_sparsity must be >= 0, got {mask_sparsity}")
        self.mask_sparsity = float(mask_sparsity)
        if int(mask_sparsity_start) < 0:
            raise ValueError(f"mask_sparsity_start must be >= 0, got {mask_sparsity_start}")
        self.mask_sparsity_start = int(mask_sparsity_start)
        if oracle_mask is not None and (attention is not None or not 0.0 <= float(oracle_mask) <= 1.0):
            raise ValueError(f"oracle_mask needs attention: null and a value in [0, 1], got {oracle_mask}")
        self.oracle_mask = None if oracle_mask is None else float(oracle_mask)
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        self.lr_schedule = lr_schedule
        self._optimizer_factories = {
            "translator": optimizer_translator or (lambda p: paper_adam(p, 1e-3)),
            "attention": optimizer_attention or (lambda p: paper_adam(p, 1e-3)),
            "discriminator": optimizer_discriminator or (lambda p: paper_adam(p, 1e-4)),
        }

    def on_fit_start(self) -> None:
        super().on_fit_start()
        fresh = self.trainer.ckpt_path is None
        init = getattr(self.translator, "init_output_bias", None)
        if fresh and self.init_output_bias and init is not None and self.mean_mel_all is not None:
            init(self.mean_mel_all)

    # -- inference -----------------------------------------------------------------------
    def networks(self) -> dict[str, Any]:
        return {"translator": self.translator, "attention": self.attention}

    def attend(self, mri: torch.Tensor, region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A's masked frames and masks (the input itself and None without A; the oracle's with ``oracle_mask``)."""
        if self.oracle_mask is not None:
            if region is None:
                raise ValueError("oracle_mask needs the batch's motion_region (--data.init_args.motion_regions all)")
            mask = self.oracle_mask + (1.0 - self.oracle_mask) * region.to(mri.dtype).reshape(mri.shape)
            return mask * mri, mask
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

    def configure_optimizers(self):
        opts = [self._optimizer_factories[name](getattr(self, name).parameters()) for name in self.optimizer_names]
        if self.lr_schedule == "constant":
            return opts
        total = max(1, int(self.trainer.estimated_stepping_batches))

        def cosine(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

        return opts, [torch.optim.lr_scheduler.LambdaLR(opt, cosine) for opt in opts]

    def _step_schedulers(self) -> None:
        """Manual optimisation: Lightning steps no scheduler, so each batch does (one step per batch)."""
        if self.lr_schedule == "constant":
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
        loss = loss_rec
        terms = {"loss_rec": loss_rec}
        if paired and self.pairwise_loss is not None and self.beta != 0.0:
            same = batch["same_utterance"].to(pred.dtype)
            loss_kl = self.pairwise_loss(out.mu[:b], out.logvar[:b], out.mu[b:], out.logvar[b:], weight=self.beta * same)
            loss = loss + loss_kl
            terms["loss_kl"] = loss_kl
            self.log("train/loss_kl", loss_kl.detach(), batch_size=b)
        if D is not None:
            loss_adv = self.adversarial_loss.generator_loss(D(pred))
            loss = loss + self.adversarial_weight * loss_adv
            terms["loss_adv"] = loss_adv
            self.log("train/loss_adv", loss_adv.detach(), batch_size=b)
        self.check_finite(**terms)
        if self.attention is not None and loss is not loss_rec:
            (grad_rec,) = torch.autograd.grad(loss_rec, x, retain_graph=True)
            x.register_hook(lambda _g: grad_rec)
        if masks is not None and self.mask_sparsity > 0 and self.current_epoch >= self.mask_sparsity_start:
            # reaches A only (F does not make the masks); per sample, like L_rec
            loss_mask = self.mask_sparsity * masks.mean(dim=tuple(range(1, masks.dim()))).mean()
            loss = loss + loss_mask
            self.log("train/loss_mask", loss_mask.detach(), batch_size=b)
        for name in ("translator", "attention"):
            if name in opts:
                opts[name].zero_grad(set_to_none=True)
        self.manual_backward(loss)
        for name in ("translator", "attention"):
            if name in opts:
                opts[name].step()

        self._step_schedulers()

        self.log("train/loss_rec", loss_rec.detach(), prog_bar=True, batch_size=b)
        self.log("train/loss", loss.detach(), batch_size=b)
        return loss.detach()

    # -- evaluation ----------------------------------------------------------------------
    def _eval_step(self, batch: dict, prefix: str) -> dict:
        pred, masks = self.predict_with_masks(batch["mri"], batch.get("motion_region"))
        self.log(f"{prefix}/loss_rec", self.reconstruction_loss(pred, batch["mel"]), batch_size=pred.shape[0], sync_dist=True)
        return self.evaluation_outputs(pred, masks, batch, prefix)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        pred, masks = self.predict_with_masks(batch["mri"], batch.get("motion_region"))
        return {"mel": pred, "masks": masks}
