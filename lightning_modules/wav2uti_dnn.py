"""DNN baseline of speech -> ultrasound (Porras, Csapo et al. 2019; the wav2uti paper's Table 1 row "DNN").

Frame-wise acoustic features from ``audio_encoder`` (log-mel by default; the original used MFCC /
mel with a context window) -> ``network`` (:class:`~articulate.networks.wav2uti.dnn.FrameDNN`) ->
one ultrasound frame per video frame, trained with MSE on the [-1, 1] pixel scale. It uses the same
DataModule, feature cache and RMSE/PSNR evaluation (with the same floors and contour measure) as the
diffusion model (``Wav2UTIModule``), so the two compare on the same clips; inference:
:class:`articulate.inference.wav2uti.FrameRegressor`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from articulate.baselines.wav2uti import RidgeProbe
from articulate.inference.wav2uti import FrameRegressor
from lightning_modules.wav2uti_base import Wav2UTIModule

__all__ = ["Wav2UTIDNN"]


class Wav2UTIDNN(Wav2UTIModule):
    inference_class = "articulate.inference.wav2uti.FrameRegressor"
    stage = "base"

    def __init__(self, network: nn.Module, audio_encoder: nn.Module, resolution: int = 64, clip_frames: int = 16,
                 fps: float = 60.0, lr: float = 1e-3, weight_decay: float = 0.0, baselines: RidgeProbe | None = None,
                 contour_ckpt: str | None = None, contour_threshold: float = 0.3, condition_context: int = 0):
        super().__init__(audio_encoder, None, resolution, clip_frames, fps, baselines, contour_ckpt, contour_threshold,
                         condition_context)
        self.save_config()
        self.network = network

    def inference_init(self) -> dict[str, Any]:
        return {"network": self.network, "audio_encoder": self.audio_encoder, "resolution": self.resolution,
                "clip_frames": self.clip_frames, "fps": self.fps, "condition_context": self.condition_context}

    def to_inference(self) -> FrameRegressor:
        self._encoders_to_device()
        return FrameRegressor(**self.inference_init())

    @torch.no_grad()
    def generate(self, audio_feats: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """``[B, T + 2c, D]`` features -> ``[B, 1, T, R, R]`` video in [-1, 1] (any T, frame by frame)."""
        return self.to_inference().generate(audio_feats)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        # EigenTongue output: the basis of the training frames, once (a resumed fit restored it already)
        if self.network.basis_size is not None and not bool(self.network.basis_fitted):
            clips = self.trainer.datamodule.baseline_clips("train")
            keep = torch.linspace(0, len(clips) - 1, min(len(clips), 20000 // self.clip_frames + 1)).round().long()
            frames = torch.cat([clips[int(i)]["video"][0] for i in keep.unique()])
            self.network.fit_basis(frames)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = F.mse_loss(self.network(self.audio_features(batch), margin=self.condition_context), batch["video"])
        self.check_finite(loss=loss)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["video"].shape[0])
        return loss

    def predict_clips(self, batch: dict[str, Any], n: int, cascade: bool) -> torch.Tensor:
        return self.network(self.audio_features(batch)[:n], margin=self.condition_context)

    def log_eval_loss(self, batch, batch_idx, prefix, pred) -> None:
        self.log(f"{prefix}/loss", F.mse_loss(pred, batch["video"][: pred.shape[0]]), batch_size=pred.shape[0],
                 sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
