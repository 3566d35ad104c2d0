"""uti2contour: ultrasound frame -> tongue keypoints with a heatmap network (DeepLabCut's task).

Training: Gaussian heatmap targets (``sigma`` heatmap px) and a per-keypoint masked MSE
(:func:`~articulate.networks.uti2contour.heatmaps.masked_heatmap_loss`): a point the labeller left
empty has zero weight. The loss term is ``loss_heatmap`` (:mod:`articulate.losses`: weighted by
``lambdas``, logged as ``train/loss_heatmap``); ``LossTerms`` components in ``losses`` add terms read from
the context ``heatmaps`` ``[B, K, h, w]``, ``targets`` (the Gaussian targets), ``keypoints`` ``[B, K, 2]``
(input px, NaN = missing), ``valid`` ``[B, K]``, ``stride`` and ``image``.

Validation / test: keypoints decoded by argmax + sub-pixel refinement, mapped back to the original
image's pixels, contours through the 11 tongue points compared with the labels by MSD
(:class:`articulate.metrics.contour.ContourMSD`). Logged: ``val/msd_px`` (and ``val/msd_mm`` when
the data knows the pixel size), ``val/found_fraction``, ``test/msd_px``, ``test/msd_px_std``,
``test/msd_mm``, ``test/found_fraction``, and beside them the baselines scored by the same code:
``test/msd_px_mean_shape`` (the mean training keypoints) and ``test/msd_px_edge_tracer`` (a
classical scan-line tracer), with their mm variants.

The checkpoint carries (``lightning_modules.base.ArticulateModule``) everything
:class:`articulate.contour.tracker.ContourTracker` needs to rebuild and run the network without
this module (``to_inference()`` builds the same object over the live network).
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from articulate.contour.baselines import EdgeTracer
from articulate.contour.fan import Fan
from articulate.contour.geometry import apply_affine
from articulate.contour.tracker import ContourTracker
from articulate.losses import LossTerms
from articulate.metrics.contour import ContourMSD
from articulate.networks.uti2contour.heatmaps import decode_heatmaps, gaussian_targets, masked_heatmap_loss
from lightning_modules.base import ArticulateModule

__all__ = ["ContourHeatmapModule", "KeypointSource"]


@runtime_checkable
class KeypointSource(Protocol):
    """What a uti2contour DataModule offers its model (``datamodules.uti2contour.ContourDataModule``)."""

    keypoint_names: list[str]
    input_size: tuple[int, int]
    probe: str

    def setup(self, stage: str | None = None) -> None: ...

    def train_keypoints_input(self) -> np.ndarray: ...


@runtime_checkable
class KeypointNetwork(Protocol):
    """A heatmap network: images ``[B, 1, H, W]`` -> heatmaps ``[B, num_keypoints, h, w]``."""

    num_keypoints: int

    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...


_NAMES = ("model", "mean_shape", "edge_tracer")


class ContourHeatmapModule(ArticulateModule):
    """Heatmap keypoint model for tongue contours.

    Args:
        network: heatmap network (:class:`KeypointNetwork`, e.g. ``HeatmapUNet``); ``num_keypoints`` must match
            the data's bodyparts.
        tongue_points: leading keypoints that form the contour (11 for DLC's ultrasound model).
        sigma: Gaussian target width (heatmap px).
        fg_weight: extra weight of pixels near the peak in the heatmap loss.
        lambdas, losses: the weights of the loss terms by name and extra ``LossTerms`` components (module docstring).
        optimizer, lr_scheduler: ``OptimizerCallable`` (AdamW in the config) and ``LRSchedulerCallable``
            (``articulate.optim.WarmupCosineLR`` in the config: linear warm-up, then half a cosine to 0 at
            ``trainer.max_steps``), stepped once per optimizer step.
        threshold: mean tongue-point confidence from which a frame counts as "tongue found".
        decoder_smooth: Gaussian smoothing (heatmap px) before decoding.
        edge_tracer: the classical baseline scored at test (None = skip it).
    """

    direction = "uti2contour"
    inference_class = "articulate.contour.tracker.ContourTracker"
    builtin_terms = ("loss_heatmap",)

    def __init__(self, network: nn.Module, tongue_points: int = 11, sigma: float = 2.0, fg_weight: float = 0.0,
                 lambdas: dict[str, float] | None = None, losses: list[LossTerms] | None = None,
                 optimizer: OptimizerCallable | None = None, lr_scheduler: LRSchedulerCallable | None = None,
                 threshold: float = 0.3, decoder_smooth: float = 1.0, edge_tracer: EdgeTracer | None = None):
        super().__init__()
        self.save_config()
        if not isinstance(network, KeypointNetwork):
            raise ValueError(f"ContourHeatmapModule: the network ({type(network).__name__}) must say its num_keypoints")
        self.network = network
        self.tongue_points, self.sigma = int(tongue_points), float(sigma)
        self.init_losses(lambdas, losses)
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.edge_tracer = edge_tracer
        self.register_buffer("mean_shape", torch.full((network.num_keypoints, 2), float("nan")))
        self.input_size: tuple[int, int] | None = None
        self.keypoint_names: list[str] | None = None
        self.probe = "bottom"
        self._metrics: dict[str, ContourMSD] = {}
        self.test_results: dict[str, float] = {}

    # ------------------------------------------------------------------ data wiring
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if not isinstance(dm, KeypointSource):
            return
        dm.setup(stage)
        k = len(dm.keypoint_names)
        if self.network.num_keypoints != k:
            raise ValueError(f"network predicts {self.network.num_keypoints} keypoints, the data has {k} "
                             f"({', '.join(dm.keypoint_names)}): set model.init_args.network.init_args.num_keypoints")
        self.input_size, self.keypoint_names, self.probe = tuple(dm.input_size), list(dm.keypoint_names), dm.probe
        # the mean shape comes from the training split: at fit, or at test when no checkpoint brought one
        if stage == "fit" or not bool(torch.isfinite(self.mean_shape).any()):
            with np.errstate(all="ignore"):
                mean = np.nanmean(dm.train_keypoints_input(), axis=0)
            self.mean_shape = torch.as_tensor(mean, dtype=torch.float32, device=self.mean_shape.device)

    # ------------------------------------------------------------------ training
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(image)

    def _stride(self, image: torch.Tensor, heat: torch.Tensor) -> int:
        return image.shape[-2] // heat.shape[-2]

    def loss(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        """The weighted sum of the loss terms of a batch, each logged (missing keypoints carry zero weight)."""
        image, kp, valid = batch["image"], batch["keypoints"].float(), batch["valid"]
        heat = self.network(image)
        stride = self._stride(image, heat)
        target = gaussian_targets(kp, heat.shape[-2:], stride, self.sigma)
        terms = {"loss_heatmap": masked_heatmap_loss(heat, target, valid.to(heat.dtype), self.hparams.fg_weight)}
        context = {"heatmaps": heat, "targets": target, "keypoints": kp, "valid": valid, "stride": stride, "image": image}
        return self.objective(self.add_terms(terms, context), stage, image.shape[0], prog_bar=("loss",))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self.loss(batch, "train")

    # ------------------------------------------------------------------ evaluation
    def _metric(self, name: str) -> ContourMSD:
        if name not in self._metrics:
            self._metrics[name] = ContourMSD(tongue_points=self.tongue_points, threshold=self.hparams.threshold)
        m = self._metrics[name]
        return m.to(self.device)

    def predict_keypoints(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints in the original images' pixels ``[B, K, 2]`` and confidence ``[B, K]``."""
        heat = self.network(batch["image"])
        kp, conf = decode_heatmaps(heat, self._stride(batch["image"], heat), self.hparams.decoder_smooth)
        inv = torch.linalg.inv(batch["to_input"].double())
        return apply_affine(kp.double(), inv), conf

    def _eval(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        self.loss(batch, stage)
        b = batch["image"].shape[0]
        kp, conf = self.predict_keypoints(batch)
        ref, idx, mm = batch["orig_keypoints"].double(), batch["sample_index"], batch["mm_per_pixel"]
        self._metric(f"{stage}/model").update(kp, ref, sample_index=idx, pred_confidence=conf, mm_per_pixel=mm)
        if stage == "test":
            inv = torch.linalg.inv(batch["to_input"].double())
            mean = self.mean_shape.double()[None].expand(b, -1, -1)
            self._metric("test/mean_shape").update(apply_affine(mean, inv), ref, sample_index=idx, mm_per_pixel=mm)
            if self.edge_tracer is not None:
                ekp = self._edge_trace(batch)
                self._metric("test/edge_tracer").update(apply_affine(ekp, inv), ref, sample_index=idx, mm_per_pixel=mm)
        return {"keypoints_pred": kp, "confidence": conf, "keypoints_target": ref, "sample_index": idx}

    def _edge_trace(self, batch: dict[str, Any]) -> torch.Tensor:
        """The edge tracer on the network-input images (its pixel parameters scaled to them)."""
        images = batch["image"][:, 0].detach().cpu().numpy()
        scale = torch.sqrt(torch.linalg.det(batch["to_input"][:, :2, :2].double())).cpu().numpy()
        out = np.full((len(images), self.tongue_points, 2), np.nan)
        fans = batch["fan"].cpu().numpy()
        for i, img in enumerate(images):
            f = fans[i]
            fan = None if not np.isfinite(f).all() else Fan(apex=(f[0], f[1]), r_min=f[2], r_max=f[3], theta_min=f[4],
                                                          theta_max=f[5], probe="top" if f[6] > 0 else "bottom")
            if fan is None:
                from articulate.contour.fan import estimate_fan

                fan = estimate_fan(img * 255.0)
            kp, _ = self.edge_tracer.trace_frame(img.astype(np.float64), fan, float(scale[i]))
            out[i, : kp.shape[0]] = kp[: self.tongue_points]
        k = batch["orig_keypoints"].shape[1]
        full = np.full((len(images), k, 2), np.nan)
        full[:, : self.tongue_points] = out
        return torch.from_numpy(full).to(batch["image"].device)

    def validation_step(self, batch, batch_idx):
        return self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._eval(batch, "test")

    def _reset(self, stage: str) -> None:
        for name, m in self._metrics.items():
            if name.startswith(stage + "/"):
                m.reset()

    def on_validation_epoch_start(self) -> None:
        self._reset("val")

    def on_test_epoch_start(self) -> None:
        self._reset("test")

    def _log_stage(self, stage: str) -> dict[str, float]:
        results: dict[str, float] = {}
        for name in _NAMES:
            m = self._metrics.get(f"{stage}/{name}")
            if m is None:
                continue
            s = m.summary()  # synced across DDP ranks inside
            suffix = "" if name == "model" else f"_{name}"
            results[f"{stage}/msd_px{suffix}"] = s["msd_px"]
            if name == "model":
                results[f"{stage}/found_fraction"] = s["found_fraction"]
                if stage == "test":
                    results[f"{stage}/msd_px_std"] = s["msd_px_std"]
            if math.isfinite(s["msd_mm"]):
                results[f"{stage}/msd_mm{suffix}"] = s["msd_mm"]
                if name == "model" and stage == "test":
                    results[f"{stage}/msd_mm_std"] = s["msd_mm_std"]
        for key, value in results.items():
            self.log(key, value, sync_dist=True, prog_bar=key.endswith("/msd_px"))
        return results

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._reset("val")
            return
        self._log_stage("val")

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_stage("test")

    # ------------------------------------------------------------------ optimisation
    def optimizer_groups(self) -> dict[str, tuple[Any, OptimizerCallable]]:
        if self.optimizer is None:
            raise ValueError("ContourHeatmapModule: no optimizer (model.init_args.optimizer)")
        return {"network": (self.network.parameters(), self.optimizer)}

    # ------------------------------------------------------------------ checkpoint / inference
    def inference_init(self) -> dict[str, Any]:
        if self.input_size is None or self.keypoint_names is None:
            raise RuntimeError("the module has not seen its data (input size, keypoint names) yet")
        return {"network": self.network, "input_size": list(self.input_size), "keypoints": list(self.keypoint_names),
                "tongue_points": self.tongue_points, "probe": self.probe,
                "smooth_sigma": float(self.hparams.decoder_smooth)}

    def to_inference(self) -> ContourTracker:
        return ContourTracker(**self.inference_init()).to(self.device)

    def tracker(self) -> ContourTracker:
        """An inference object sharing this module's network (the same code path as a checkpoint's)."""
        return self.to_inference()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.input_size is not None:  # before the data is seen there is nothing to infer with
            super().on_save_checkpoint(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        init = (checkpoint.get("articulate") or {}).get("init") or {}
        if init:
            self.input_size, self.keypoint_names = tuple(init["input_size"]), list(init["keypoints"])
            self.probe = init.get("probe", "bottom")
