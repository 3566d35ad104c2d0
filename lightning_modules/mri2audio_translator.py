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

import inspect
import warnings
from typing import Any, Iterable, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from articulate.networks.mri2audio.losses import AdversarialLoss, PairwiseKL, ReconstructionLoss
from articulate.signal.mel import MelConfig, as_mel_config

CHECKPOINT_KEY = "articulate"
DEFAULT_INPUT_SHAPE = (26, 128, 128)
DEFAULT_PERCENTILES = (0.5, 99.5)


def save_hparams(module: LightningModule) -> None:
    """``save_hyperparameters`` keeping what rebuilds the module from its checkpoint.

    Under LightningCLI the hparams are the parsed config (networks as ``class_path``/``init_args``),
    which ``load_from_checkpoint`` re-instantiates. Built in Python, the constructor receives
    network and optimizer *objects*: those are left out (the weights are in the state dict).
    """
    frame = inspect.currentframe().f_back
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

        from_cli = _given_hyperparameters.get() is not None
    except ImportError:  # pragma: no cover - a Lightning without the CLI instantiator context
        from_cli = False
    ignore: list[str] = []
    if not from_cli:
        ignore = [k for k, v in frame.f_locals.items() if k != "self" and (isinstance(v, nn.Module) or callable(v))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        module.save_hyperparameters(ignore=ignore, frame=frame)


def paper_adam(params: Iterable, lr: float) -> torch.optim.Optimizer:
    """The optimizer used when none is configured: Adam, beta1 = 0.5 (the paper's "momentum 0.5")."""
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


class MRI2AudioModule(LightningModule):
    """Shared by the translator and Lip2AudSpec: checkpoint metadata and the mean-mel baseline.

    ``checkpoint["articulate"]`` holds the direction, the mel transform, the sample rate and the
    input grid (frames, H, W), so ``articulate synthesize-audio`` needs nothing but the checkpoint.
    """

    direction = "mri2audio"

    def __init__(self, eval_audio: bool = True, griffin_lim_iters: int = 32, pesq_mode: str = "wb",
                 griffin_lim: str = "auto") -> None:
        super().__init__()
        if griffin_lim not in ("auto", "torch", "librosa"):
            raise ValueError(f"griffin_lim must be 'auto', 'torch' or 'librosa', got {griffin_lim!r}")
        self.griffin_lim = griffin_lim
        self._baseline_audio: dict[tuple[int, int], torch.Tensor] = {}
        # Validation/test waveforms (Griffin-Lim of the predicted mel) for PESQ and the media panels.
        self.eval_audio = bool(eval_audio)
        self.griffin_lim_iters = int(griffin_lim_iters)
        self.pesq_mode = pesq_mode
        self._metrics: dict[str, dict[str, Any]] = {}
        self.mel_config: MelConfig = MelConfig()
        self.sample_rate: int = self.mel_config.sr
        self.input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE
        # MRI intensity percentiles mapped to [0, 1] (datamodules.mri2audio.prepare_mri).
        self.intensity_percentiles: tuple[float, float] = DEFAULT_PERCENTILES
        self.mean_mel: torch.Tensor | None = None  # [U, 1, H, W], per training utterance id
        self.mean_mel_all: torch.Tensor | None = None  # [1, H, W], for ids never seen in training

    # -- metadata ------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        if getattr(dm, "mel_config", None) is not None:
            self.mel_config = as_mel_config(dm.mel_config)
            self.sample_rate = int(getattr(dm, "sample_rate", None) or self.mel_config.sr)
        if getattr(dm, "frames", None) and getattr(dm, "size", None):
            self.input_shape = (int(dm.frames), int(dm.size), int(dm.size))
        if getattr(dm, "intensity_percentiles", None) is not None:
            self.intensity_percentiles = tuple(float(v) for v in dm.intensity_percentiles)

    def note_input(self, mri: torch.Tensor) -> None:
        self.input_shape = tuple(int(s) for s in mri.shape[-3:])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "direction": self.direction,
            "mel_config": self.mel_config.to_dict(),
            "sample_rate": int(self.sample_rate),
            "input_shape": list(self.input_shape),
            "intensity_percentiles": list(self.intensity_percentiles),
            "mean_mel": None if self.mean_mel is None else self.mean_mel.cpu(),
            "mean_mel_all": None if self.mean_mel_all is None else self.mean_mel_all.cpu(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get(CHECKPOINT_KEY) or {}
        if meta.get("mel_config") is not None:
            self.mel_config = as_mel_config(meta["mel_config"])
        self.sample_rate = int(meta.get("sample_rate") or self.mel_config.sr)
        self.input_shape = tuple(meta.get("input_shape") or DEFAULT_INPUT_SHAPE)
        self.intensity_percentiles = tuple(meta.get("intensity_percentiles") or DEFAULT_PERCENTILES)
        self.mean_mel, self.mean_mel_all = meta.get("mean_mel"), meta.get("mean_mel_all")
        self._baseline_audio = {}

    # -- per-utterance mean-mel baseline --------------------------------------------------
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
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        # A DataModule may offer its training mels without the MRI (much cheaper); else read its loader.
        batches = dm.train_mels() if hasattr(dm, "train_mels") else dm.train_dataloader()
        self.compute_mean_mels(batches)

    def _callback_metrics(self) -> set[str]:
        """Metrics a ``callbacks.metrics.MetricsCallback`` computes (it logs ``val/<name>`` itself)."""
        if self._trainer is None:
            return set()
        return {m for cb in self.trainer.callbacks for m in (getattr(cb, "val_metrics", None) or ())}

    def _stage_metrics(self, prefix: str) -> dict[str, Any]:
        """The module's own metrics for ``prefix`` (DDP-exact ``articulate.metrics`` objects): the
        mean-mel baseline's Corr2D and PESQ, and the model's Corr2D unless a callback computes it."""
        from articulate.metrics import PESQ, Corr2D

        if prefix not in self._metrics:
            wanted = {"corr2d_mean_baseline": Corr2D()}
            if "corr2d" not in self._callback_metrics():
                wanted["corr2d"] = Corr2D()
            if self.eval_audio:
                wanted["pesq_mean_baseline"] = PESQ(mode=self.pesq_mode)
            self._metrics[prefix] = {k: m.to(self.device) for k, m in wanted.items()}
        return self._metrics[prefix]

    def griffin_lim_method(self, device: torch.device | str | None = None) -> str:
        """``griffin_lim`` with "auto" resolved: the batched torch path on GPU, librosa on CPU
        (librosa's L-BFGS-B mel inversion is several times faster there than the torch FISTA one)."""
        if self.griffin_lim != "auto":
            return self.griffin_lim
        device = torch.device(device) if device is not None else self.device
        return "torch" if device.type == "cuda" else "librosa"

    @torch.no_grad()
    def synthesize_audio(self, mel_unit: torch.Tensor, length: int | None = None, method: str | None = None) -> torch.Tensor:
        """Unit-scale mels ``[B, 1, n_mels, T]`` (or ``[B, n_mels, T]``) -> waveforms ``[B, L]`` in [-1, 1].

        Griffin-Lim (``griffin_lim_iters`` iterations, seeded initial phase) at ``self.sample_rate``;
        ``method`` "torch" (batched, on the mel's device), "librosa" (``mel_to_audio``, CPU) or None
        for :meth:`griffin_lim_method`.
        """
        import numpy as np

        from articulate.signal import mel_to_audio, mel_to_audio_librosa, unit_to_power

        mel = mel_unit[:, 0] if mel_unit.dim() == 4 else mel_unit
        power = unit_to_power(mel.float(), self.mel_config)
        method = method or self.griffin_lim_method(mel.device)
        if method == "torch":
            wav = mel_to_audio(power, self.mel_config, n_iter=self.griffin_lim_iters, length=length)
        elif method == "librosa":
            out = [mel_to_audio_librosa(m, self.mel_config, n_iter=self.griffin_lim_iters, length=length)
                   for m in power.cpu().numpy()]
            wav = torch.from_numpy(np.stack(out)).to(mel.device)
        else:
            raise ValueError(f"griffin_lim must be 'auto', 'torch' or 'librosa', got {method!r}")
        return wav.float().clamp(-1.0, 1.0)

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
        """Update the module's metrics (model Corr2D, mean-mel baseline Corr2D and PESQ) and return
        the outputs dict of the ``callbacks`` protocol (mels, waveforms, masks, MRI)."""
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
        if self.eval_audio and "audio" in batch and not self.trainer.sanity_checking:
            audio = batch["audio"]
            out["audio_pred"] = self.synthesize_audio(pred, length=audio.shape[-1])
            out["audio_target"] = audio
            out["sample_rate"] = int(self.sample_rate)
            if base is not None:
                base_audio = self.baseline_audio(batch["utterance"], audio.shape[-1])
                metrics["pesq_mean_baseline"].update(base_audio, audio, int(self.sample_rate), sample_index=index)
        return out

    def _log_stage_metrics(self, prefix: str) -> None:
        for name, metric in self._metrics.get(prefix, {}).items():
            if not self.trainer.sanity_checking:
                # compute() is collective under DDP: every rank calls it; the value is global.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                    value = float(metric.compute())
                self.log(f"{prefix}/{name}", value, prog_bar=name.startswith("corr2d"), sync_dist=True)
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_stage_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_stage_metrics("test")


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
        eval_audio: at validation/test, also synthesise waveforms (Griffin-Lim, ``griffin_lim_iters``
            iterations) and return them with the batch's audio for PESQ (``callbacks.metrics``);
            the module then also logs the mean-mel baseline's PESQ (``pesq_mode``, as the callback's).
        griffin_lim: "auto" (torch on GPU, librosa on CPU), "torch" or "librosa"; also the default
            of ``articulate synthesize-audio``.
        init_output_bias: when F has a per-pixel ``output_bias`` (not the paper's default), set it
            at the start of a fresh fit (not a resume) to the logit of the mean training mel.
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
        eval_audio: bool = True,
        griffin_lim_iters: int = 32,
        pesq_mode: Literal["wb", "nb"] = "wb",
        griffin_lim: Literal["auto", "torch", "librosa"] = "auto",
        init_output_bias: bool = True,
    ):
        super().__init__(eval_audio, griffin_lim_iters, pesq_mode, griffin_lim)
        save_hparams(self)
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
    def attend(self, mri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A's masked frames and masks (the input itself and None without A)."""
        if self.attention is None:
            return mri, None
        return self.attention(mri)

    def forward(self, mri: torch.Tensor) -> torch.Tensor:
        """MRI ``[B, 1, T, H, W]`` in [0, 1] -> unit-scale mel ``[B, 1, 64, 64]`` (u = mu in eval mode)."""
        x, _ = self.attend(mri)
        return self.translator(x).mel

    def predict_with_masks(self, mri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, masks = self.attend(mri)
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
        return [self._optimizer_factories[name](getattr(self, name).parameters()) for name in self.optimizer_names]

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
        if paired:
            mri = torch.cat([mri, batch["mri_pair"]])
            mel = torch.cat([mel, batch["mel_pair"]])
        b = batch["mri"].shape[0]

        x, _ = self.attend(mri)
        out = self.translator(x)
        pred = out.mel

        # 1. Discriminator: real vs (detached) generated mels.
        D = self.discriminator
        if D is not None:
            real_logits, fake_logits = D(mel), D(pred.detach())
            loss_d = self.adversarial_loss.discriminator_loss(real_logits, fake_logits)
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
        if paired and self.pairwise_loss is not None and self.beta != 0.0:
            same = batch["same_utterance"].to(pred.dtype)
            loss_kl = self.pairwise_loss(out.mu[:b], out.logvar[:b], out.mu[b:], out.logvar[b:], weight=self.beta * same)
            loss = loss + loss_kl
            self.log("train/loss_kl", loss_kl.detach(), batch_size=b)
        if D is not None:
            loss_adv = self.adversarial_loss.generator_loss(D(pred))
            loss = loss + self.adversarial_weight * loss_adv
            self.log("train/loss_adv", loss_adv.detach(), batch_size=b)
        if self.attention is not None and loss is not loss_rec:
            (grad_rec,) = torch.autograd.grad(loss_rec, x, retain_graph=True)
            x.register_hook(lambda _g: grad_rec)
        for name in ("translator", "attention"):
            if name in opts:
                opts[name].zero_grad(set_to_none=True)
        self.manual_backward(loss)
        for name in ("translator", "attention"):
            if name in opts:
                opts[name].step()

        self.log("train/loss_rec", loss_rec.detach(), prog_bar=True, batch_size=b)
        self.log("train/loss", loss.detach(), batch_size=b)
        return loss.detach()

    # -- evaluation ----------------------------------------------------------------------
    def _eval_step(self, batch: dict, prefix: str) -> dict:
        pred, masks = self.predict_with_masks(batch["mri"])
        self.log(f"{prefix}/loss_rec", self.reconstruction_loss(pred, batch["mel"]), batch_size=pred.shape[0], sync_dist=True)
        return self.evaluation_outputs(pred, masks, batch, prefix)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        pred, masks = self.predict_with_masks(batch["mri"])
        return {"mel": pred, "masks": masks}
