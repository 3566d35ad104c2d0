"""DNN baseline of speech -> ultrasound (Porras, Csapo et al. 2019; the wav2uti paper's Table 1 row "DNN").

Frame-wise acoustic features from ``audio_encoder`` (log-mel by default; the original used MFCC /
mel with a context window) -> ``network`` (:class:`~articulate.networks.wav2uti.dnn.FrameDNN`) ->
one ultrasound frame per video frame, trained with MSE on the [-1, 1] pixel scale (the loss term ``loss_mse``;
``lambdas``, ``losses``, ``optimizer`` and ``lr_scheduler`` as in every module: :mod:`articulate.losses`; the
``losses`` components read the context ``pred`` and ``target`` (``[B, 1, T, R, R]`` on the [-1, 1] scale),
``feats`` (the speech features ``[B, T + 2c, D]``) and ``batch_size``). It uses the same
DataModule, feature cache and RMSE/PSNR evaluation (with the same floors and contour measure) as the
diffusion model (``Wav2UTIModule``), so the two compare on the same clips; inference:
:class:`articulate.inference.wav2uti.FrameRegressor`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from articulate.baselines.wav2uti import RidgeProbe
from articulate.inference.wav2uti import FrameRegressor
from articulate.losses import LossTerms
from articulate.transforms.clips import ClipGeometry
from lightning_modules.wav2uti_base import VideoEvaluation, Wav2UTIModule

__all__ = ["Wav2UTIDNN"]


class Wav2UTIDNN(Wav2UTIModule):
    inference_class = "articulate.inference.wav2uti.FrameRegressor"
    stage = "base"  # of a cascade: the DNN generates at the data resolution
    builtin_terms = ("loss_mse",)

    def __init__(self, network: nn.Module, audio_encoder: nn.Module, clips: ClipGeometry = ClipGeometry(),
                 lambdas: dict[str, float] | None = None, losses: list[LossTerms] | None = None,
                 optimizer: OptimizerCallable | None = None, lr_scheduler: LRSchedulerCallable | None = None,
                 baselines: RidgeProbe | None = None, evaluation: VideoEvaluation = VideoEvaluation()):
        super().__init__(audio_encoder, None, clips, baselines, evaluation)
        self.save_config()
        self.network = network
        self.init_losses(lambdas, losses)
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler

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

    def _objective(self, pred: torch.Tensor, target: torch.Tensor, feats: torch.Tensor, stage: str) -> torch.Tensor:
        context = {"pred": pred, "target": target, "feats": feats, "batch_size": pred.shape[0]}
        terms = self.add_terms({"loss_mse": F.mse_loss(pred, target)}, context)
        return self.objective(terms, stage, pred.shape[0], prog_bar=("loss",) if stage == "train" else ())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        feats = self.audio_features(batch)
        return self._objective(self.network(feats, margin=self.condition_context), batch["video"], feats, "train")

    def predict_clips(self, batch: dict[str, Any], n: int, cascade: bool) -> torch.Tensor:
        return self.network(self.audio_features(batch)[:n], margin=self.condition_context)

    def log_eval_loss(self, batch, batch_idx, prefix, pred) -> None:
        n = pred.shape[0]
        self._objective(pred, batch["video"][:n], self.audio_features(batch)[:n], prefix)

    def optimizer_groups(self) -> dict[str, tuple[Any, OptimizerCallable]]:
        if self.optimizer is None:
            raise ValueError("Wav2UTIDNN: no optimizer (model.init_args.optimizer)")
        return {"network": ([p for p in self.parameters() if p.requires_grad], self.optimizer)}
