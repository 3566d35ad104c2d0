"""DNN baseline of speech -> ultrasound (Porras, Csapo et al. 2019; the wav2uti paper's Table 1 row "DNN").

Frame-wise acoustic features from ``audio_encoder`` (log-mel by default; the original used MFCC /
mel with a context window) -> ``network`` (:class:`~articulate.networks.wav2uti.dnn.FrameDNN`) ->
one ultrasound frame per video frame, trained with MSE on the [-1, 1] pixel scale. It uses the same
DataModule, feature cache and RMSE/PSNR validation as the diffusion model, so the two compare on the
same clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn

from articulate.networks.wav2uti.encoders import AudioEncoder
from lightning_modules.wav2uti_diffusion import (
    video_outputs,
    attach_frozen_features,
    drop_frozen_pretrained,
    restore_frozen_pretrained,
    sample_dir,
    save_comparison_png,
    save_component_hparams,
)

__all__ = ["Wav2UTIDNN"]


class Wav2UTIDNN(LightningModule):
    direction = "wav2uti"
    text_encoder = None  # audio only

    def __init__(self, network: nn.Module, audio_encoder: AudioEncoder, resolution: int = 64, clip_frames: int = 16,
                 fps: float = 60.0, lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__()
        save_component_hparams(self, ["network", "audio_encoder"])
        self.network, self.audio_encoder = network, audio_encoder
        self.resolution, self.clip_frames, self.fps = int(resolution), int(clip_frames), float(fps)
        self.stage = "base"
        from articulate.metrics import PSNR, RMSE

        self.val_rmse, self.val_psnr = RMSE(pixel_range="signed"), PSNR(pixel_range="signed")
        self.test_rmse, self.test_psnr = RMSE(pixel_range="signed"), PSNR(pixel_range="signed")
        self._val_png = None

    def audio_features(self, batch: dict[str, Any]) -> torch.Tensor:
        if "audio_feats" in batch:
            return batch["audio_feats"].float()
        return self.audio_encoder(batch["audio"].float(), fps=self.fps, n_frames=batch["video"].shape[2])

    @torch.no_grad()
    def generate(self, audio_feats: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """``[B, T, D]`` features -> ``[B, 1, T, R, R]`` video in [-1, 1] (any T, frame by frame)."""
        return self.network(audio_feats.float()).clamp(-1.0, 1.0)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = F.mse_loss(self.network(self.audio_features(batch)), batch["video"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["video"].shape[0])
        return loss

    def _eval(self, batch: dict[str, Any], batch_idx: int, prefix: str) -> dict[str, Any]:
        pred = self.network(self.audio_features(batch))
        B = batch["video"].shape[0]
        self.log(f"{prefix}/loss", F.mse_loss(pred, batch["video"]), batch_size=B, sync_dist=True)
        rmse, psnr = (self.val_rmse, self.val_psnr) if prefix == "val" else (self.test_rmse, self.test_psnr)
        pred = pred.clamp(-1, 1)
        idx = batch.get("sample_index")
        rmse.update(pred, batch["video"], sample_index=idx)
        psnr.update(pred, batch["video"], sample_index=idx)
        self.log(f"{prefix}/rmse", rmse, batch_size=B)
        self.log(f"{prefix}/psnr", psnr, batch_size=B)
        if prefix == "val" and batch_idx == 0:
            self._val_png = (batch["video"][:2].detach().cpu(), pred[:2].detach().cpu())
        return video_outputs(pred, batch["video"], self.fps, idx)

    def validation_step(self, batch, batch_idx):
        return self._eval(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        return self._eval(batch, batch_idx, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        out = sample_dir(self)  # collective under DDP
        if self._val_png is not None and self.trainer.is_global_zero:
            save_comparison_png(out / f"step{self.global_step:07d}.png", *self._val_png)

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "attach_features"):
            if abs(float(dm.fps) - self.fps) > 1e-6:
                raise ValueError(f"model fps {self.fps} differs from the data's {dm.fps}")
            attach_frozen_features(self, dm)

    def on_save_checkpoint(self, checkpoint):
        drop_frozen_pretrained(self, checkpoint)

    def on_load_checkpoint(self, checkpoint):
        restore_frozen_pretrained(self, checkpoint)
