"""Lip2AudSpec baseline (Akbari et al. 2018) re-implemented for tagged MRI, as in the paper's Table 1.

One network (:class:`articulate.networks.mri2audio.lip2audspec.Lip2AudSpecNet`), one loss
(-corr2 + MSE, the original's: the term ``loss_rec``), Adam with lr 1e-4 (the original's; in the config).
The original's spectrogram-autoencoder bottleneck target is not used: the seed paper compares on
the same 64 x 64 mel as its own model, so the baseline predicts that mel directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from articulate.losses import LossTerms
from articulate.networks.mri2audio.losses import Corr2DMSELoss
from articulate.signal.mel import MelConfig
from lightning_modules.mri2audio_base import MelEvaluation, MRI2AudioModule


class Lip2AudSpec(MRI2AudioModule):
    """``network``: MRI ``[B, 1, T, H, W]`` -> mel ``[B, 1, 64, 64]``; automatic optimisation.

    Pair partners (when the DataModule gives them) are used as extra training samples, so the
    baseline sees the same data as the translator.

    Args:
        network: the baseline's network.
        loss: its loss component (the term ``loss_rec``; default -corr2 + MSE).
        lambdas, losses: the weights of the terms by name and extra :class:`articulate.losses.LossTerms` on the
            context ``pred``, ``target`` (mels, partners included), ``mri``, ``batch_size``.
        optimizer, lr_scheduler: ``OptimizerCallable`` and ``LRSchedulerCallable`` (None = constant rate).
        mel, input_shape, intensity_percentiles, evaluation: as :class:`~lightning_modules.mri2audio_base.MRI2AudioModule`.
    """

    builtin_terms = ("loss_rec",)

    def __init__(
        self,
        network: nn.Module,
        loss: nn.Module | None = None,
        lambdas: dict[str, float] | None = None,
        losses: list[LossTerms] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        mel: MelConfig | None = None,
        input_shape: Sequence[int] | None = None,
        intensity_percentiles: Sequence[float] | None = None,
        evaluation: MelEvaluation = MelEvaluation(),
    ):
        super().__init__(mel, input_shape, intensity_percentiles, evaluation)
        self.save_config()
        self.network = network
        self.loss = loss if loss is not None else Corr2DMSELoss()
        self.init_losses(lambdas, losses)
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler

    def networks(self) -> dict[str, Any]:
        return {"network": self.network}

    def forward(self, mri: torch.Tensor) -> torch.Tensor:
        return self.network(mri)

    def optimizer_groups(self) -> dict[str, tuple[Any, OptimizerCallable]]:
        if self.optimizer is None:
            raise ValueError("Lip2AudSpec: no optimizer (model.init_args.optimizer)")
        return {"network": (self.network.parameters(), self.optimizer)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        mri, mel = batch["mri"], batch["mel"]
        self.note_input(mri)
        if "mri_pair" in batch and "mel_pair" in batch:
            mri, mel = torch.cat([mri, batch["mri_pair"]]), torch.cat([mel, batch["mel_pair"]])
        pred = self.network(mri)
        b = batch["mri"].shape[0]
        terms = self.add_terms({"loss_rec": self.loss(pred, mel)}, {"pred": pred, "target": mel, "mri": mri, "batch_size": b})
        return self.objective(terms, "train", b, prog_bar=("loss",))

    def _eval_step(self, batch: dict, prefix: str) -> dict:
        pred = self.network(batch["mri"])
        self.log(f"{prefix}/loss", self.loss(pred, batch["mel"]), batch_size=pred.shape[0], sync_dist=True)
        return self.evaluation_outputs(pred, None, batch, prefix)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        return {"mel": self.network(batch["mri"]), "masks": None}

    def predict_with_masks(self, mri: torch.Tensor, region: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """No attention (``region``, the phantom's motion region, is for the translator's oracle mask)."""
        return self.network(mri), None
