"""Lip2AudSpec baseline (Akbari et al. 2018) re-implemented for tagged MRI, as in the paper's Table 1.

One network (:class:`articulate.networks.mri2audio.lip2audspec.Lip2AudSpecNet`), one loss
(-corr2 + MSE, the original's), Adam with lr 1e-4 (the original's) when no optimizer is configured.
The original's spectrogram-autoencoder bottleneck target is not used: the seed paper compares on
the same 64 x 64 mel as its own model, so the baseline predicts that mel directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from articulate.networks.mri2audio.losses import Corr2DMSELoss
from articulate.signal.mel import MelConfig
from lightning_modules.mri2audio_base import MRI2AudioModule


class Lip2AudSpec(MRI2AudioModule):
    """``network``: MRI ``[B, 1, T, H, W]`` -> mel ``[B, 1, 64, 64]``; automatic optimisation.

    Pair partners (when the DataModule gives them) are used as extra training samples, so the
    baseline sees the same data as the translator. ``mel``, ``input_shape``, ``intensity_percentiles``,
    ``eval_audio``, ``griffin_lim_iters``, ``pesq_mode``, ``griffin_lim`` and ``ridge_probe`` as in
    :class:`~lightning_modules.mri2audio_base.MRI2AudioModule`.
    """

    def __init__(
        self,
        network: nn.Module,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable | None = None,
        mel: MelConfig | None = None,
        input_shape: Sequence[int] | None = None,
        intensity_percentiles: Sequence[float] | None = None,
        eval_audio: bool = True,
        griffin_lim_iters: int = 32,
        pesq_mode: Literal["wb", "nb"] = "wb",
        griffin_lim: Literal["auto", "torch", "librosa"] = "librosa",
        ridge_probe: bool = True,
    ):
        super().__init__(mel, input_shape, intensity_percentiles, eval_audio, griffin_lim_iters, pesq_mode, griffin_lim,
                         ridge_probe)
        self.save_config()
        self.network = network
        self.loss = loss if loss is not None else Corr2DMSELoss()
        self._optimizer_factory = optimizer or (lambda p: torch.optim.Adam(p, lr=1e-4))

    def networks(self) -> dict[str, Any]:
        return {"network": self.network}

    def forward(self, mri: torch.Tensor) -> torch.Tensor:
        return self.network(mri)

    def configure_optimizers(self):
        return self._optimizer_factory(self.network.parameters())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        mri, mel = batch["mri"], batch["mel"]
        self.note_input(mri)
        if "mri_pair" in batch and "mel_pair" in batch:
            mri, mel = torch.cat([mri, batch["mri_pair"]]), torch.cat([mel, batch["mel_pair"]])
        pred = self.network(mri)
        loss = self.loss(pred, mel)
        self.check_finite(loss=loss)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch["mri"].shape[0])
        return loss

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
