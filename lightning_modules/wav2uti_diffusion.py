"""Audio(-textual) cascaded EDM for speech -> ultrasound tongue video (the wav2uti paper).

Components (all chosen in YAML): ``audio_encoder`` (frame-aligned acoustic features), optional
``text_encoder`` (None = the audio-only model), ``fusion`` (-> condition ``[B, T, cond_dim]``),
``denoiser`` (``EDMPrecond`` wrapping the ``VideoUNet``), ``loss`` (``EDMLoss``) and ``sampler``
(``HeunSampler``).

* ``stage="base"``: video at the data resolution (64 px in the paper's cascade) from noise.
* ``stage="super_resolution"``: the network also sees the low-res video (the target downsampled to
  ``low_res_size`` by area averaging, upsampled back bilinearly) with Gaussian noise augmentation
  of level ``aug_sigma ~ U(0, aug_sigma_max)`` in training and ``sample_aug_sigma`` at sampling;
  ``low_res_ckpt`` names the base stage: with it, ``test`` evaluates the whole cascade (the SR
  stage refines the base stage's samples, as at inference); without it, or at validation, the
  SR stage refines the downsampled ground truth (an oracle low-res input, cheaper to watch).
* Classifier-free guidance: the whole condition is dropped (all-False ``cond_mask``) with
  probability ``cond_drop_prob`` in training; ``guidance_scale`` at sampling (1 = off).
* EMA of the trainable weights (denoiser, fusion, trainable text encoder) with ``ema_decay``
  (warm-up ``min(decay, (1+n)/(10+n))``); validation sampling and synthesis use the EMA copy, and it
  is saved in the checkpoint. Frozen pretrained encoders (wav2vec 2.0, BERT) are NOT saved in the
  checkpoint: they are reloaded from their model id/path, which keeps checkpoints small.
* Frozen encoders run once per dataset: in ``setup`` rank 0 fills the on-disk feature cache through
  the DataModule, the other ranks wait at a barrier and read it.
* Validation: EDM loss with a fixed noise draw (comparable across epochs) on every batch, and
  ``val_num_clips`` clips sampled with the Heun sampler from the EMA weights, scored with RMSE and
  PSNR on 0-255 pixels (``val/rmse``, ``val/psnr``); a PNG of real vs generated frames is written to
  ``<log_dir>/wav2uti_samples/<run>/step<N>.png``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn

from articulate.diffusion import CFGDenoiser, EDMLoss, HeunSampler, LongFormSampler
from articulate.networks.wav2uti.encoders import AudioEncoder, TextEncoder

__all__ = ["Wav2UTIDiffusion", "resize_video"]


def resize_video(video: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B, C, T, size, size]`` frame by frame."""
    b, c, t, h, w = video.shape
    x = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    x = F.interpolate(x, size=(size, size), mode=mode, **kw)
    return x.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)


class Wav2UTIDiffusion(LightningModule):
    direction = "wav2uti"

    def __init__(
        self,
        denoiser: nn.Module,
        audio_encoder: AudioEncoder,
        fusion: nn.Module,
        text_encoder: TextEncoder | None = None,
        loss: EDMLoss | None = None,
        sampler: HeunSampler | None = None,
        stage: str = "base",
        resolution: int = 64,
        clip_frames: int = 16,
        fps: float = 60.0,
        low_res_size: int = 64,
        aug_sigma_max: float = 0.5,
        sample_aug_sigma: float = 0.05,
        low_res_ckpt: str | None = None,
        cond_drop_prob: float = 0.1,
        guidance_scale: float = 1.0,
        long_form_hop: int | None = None,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        ema_decay: float = 0.999,
        val_num_clips: int = 4,
        val_seed: int = 0,
    ):
        super().__init__()
        if stage not in ("base", "super_resolution"):
            raise ValueError(f"stage must be 'base' or 'super_resolution', got {stage!r}")
        save_component_hparams(self, ["denoiser", "audio_encoder", "fusion", "text_encoder", "loss", "sampler"])
        self.denoiser, self.audio_encoder, self.fusion, self.text_encoder = denoiser, audio_encoder, fusion, text_encoder
        sd = float(getattr(denoiser, "sigma_data", 0.25))
        self.loss_fn = loss if loss is not None else EDMLoss(sigma_data=sd)
        self.sampler = sampler if sampler is not None else HeunSampler(num_steps=32)
        self.stage, self.resolution, self.clip_frames, self.fps = stage, int(resolution), int(clip_frames), float(fps)
        self.low_res_size = int(low_res_size)
        # EMA copies of everything that trains (frozen pretrained encoders have nothing to average).
        self.ema = nn.ModuleDict({"denoiser": copy.deepcopy(denoiser), "fusion": copy.deepcopy(fusion)})
        if text_encoder is not None and not getattr(text_encoder, "frozen", False):
            self.ema["text_encoder"] = copy.deepcopy(text_encoder)
        self.ema.requires_grad_(False)
        self._ema_updates = 0
        from articulate.metrics import PSNR, RMSE

        self.val_rmse, self.val_psnr = RMSE(pixel_range="signed"), PSNR(pixel_range="signed")
        self.test_rmse, self.test_psnr = RMSE(pixel_range="signed"), PSNR(pixel_range="signed")
        self._val_pngs: list[tuple[torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------------------------------
    # conditions

    def _text_trainable(self) -> bool:
        return self.text_encoder is not None and not getattr(self.text_encoder, "frozen", False)

    def audio_features(self, batch: dict[str, Any]) -> torch.Tensor:
        if "audio_feats" in batch:
            return batch["audio_feats"].float()
        return self.audio_encoder(batch["audio"].float(), fps=self.fps, n_frames=batch["video"].shape[2])

    def text_features(self, batch: dict[str, Any], ema: bool = False) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.text_encoder is None:
            return None, None
        if "text_feats" in batch:
            return batch["text_feats"].float(), batch["text_mask"]
        enc = self.ema["text_encoder"] if (ema and "text_encoder" in self.ema) else self.text_encoder
        return enc(list(batch["text"]))

    def condition(self, audio_feats: torch.Tensor, text: torch.Tensor | None, text_mask: torch.Tensor | None,
                  ema: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        fusion = self.ema["fusion"] if ema else self.fusion
        return fusion(audio_feats, text, text_mask)

    # ------------------------------------------------------------------------------------------
    # cascade helpers

    def low_res_input(self, video: torch.Tensor, aug_sigma: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The SR stage's conditioning video: downsample (area), upsample (bilinear), add noise."""
        low = resize_video(video, self.low_res_size, "area")
        return self.upsample_low_res(low, aug_sigma, generator)

    def upsample_low_res(self, low: torch.Tensor, aug_sigma: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        up = resize_video(low, video_size(self.resolution), "bilinear")
        noise = torch.randn(up.shape, generator=generator, device=up.device, dtype=up.dtype)
        return up + aug_sigma.reshape(-1, 1, 1, 1, 1).to(up) * noise

    # ------------------------------------------------------------------------------------------
    # training

    def _loss(self, batch: dict[str, Any], generator: torch.Generator | None = None, drop: bool = True) -> torch.Tensor:
        video = batch["video"]
        B = video.shape[0]
        text, tmask = self.text_features(batch)
        cond, cmask = self.condition(self.audio_features(batch), text, tmask)
        if drop and self.hparams.cond_drop_prob > 0:
            keep = torch.rand(B, device=video.device, generator=generator) >= self.hparams.cond_drop_prob
            cmask = cmask & keep[:, None]
        kw: dict[str, Any] = {}
        if self.stage == "super_resolution":
            aug = torch.rand(B, device=video.device, generator=generator) * self.hparams.aug_sigma_max
            kw = {"low_res": self.low_res_input(video, aug, generator), "aug_sigma": aug}
        per_elem = self.loss_fn(self.denoiser, video, cond=cond, cond_mask=cmask, generator=generator, **kw)
        return per_elem.mean()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["video"].shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self._ema_updates += 1
        n = self._ema_updates
        decay = min(self.hparams.ema_decay, (1 + n) / (10 + n))
        with torch.no_grad():
            pairs = [(self.ema["denoiser"], self.denoiser), (self.ema["fusion"], self.fusion)]
            if "text_encoder" in self.ema:
                pairs.append((self.ema["text_encoder"], self.text_encoder))
            for ema_mod, mod in pairs:
                for pe, p in zip(ema_mod.parameters(), mod.parameters()):
                    pe.lerp_(p.detach(), 1.0 - decay)
                for be, b in zip(ema_mod.buffers(), mod.buffers()):
                    be.copy_(b)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.warmup_steps > 0:
            w = self.hparams.warmup_steps
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / w))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt

    # ------------------------------------------------------------------------------------------
    # sampling

    @torch.no_grad()
    def generate(
        self,
        audio_feats: torch.Tensor,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
        guidance_scale: float | None = None,
        sampler: HeunSampler | None = None,
        long_form_hop: int | None = None,
    ) -> torch.Tensor:
        """Video ``[B, 1, T, R, R]`` in [-1, 1] for frame-aligned ``audio_feats [B, T, D]`` (any T).

        ``low_res`` (super-resolution stage): the low-res video ``[B, 1, T, r, r]`` from the base
        stage, noise-augmented with ``sample_aug_sigma`` and upsampled here. T longer than one clip
        uses the long-form sampler (windows of ``clip_frames`` with hop ``long_form_hop``, default
        half a clip); the condition is fused per window so that every window sees what training saw.
        """
        sampler = sampler or self.sampler
        scale = self.hparams.guidance_scale if guidance_scale is None else float(guidance_scale)
        denoiser = self.ema["denoiser"] if use_ema else self.denoiser
        B, T = audio_feats.shape[:2]
        R = video_size(self.resolution)
        device = audio_feats.device
        up = None
        if self.stage == "super_resolution":
            if low_res is None:
                raise ValueError("the super-resolution stage needs the low-res video (low_res=...)")
            aug = torch.full((B,), float(self.hparams.sample_aug_sigma), device=device)
            up = self.upsample_low_res(low_res.to(device).float(), aug, generator)
        cfg = CFGDenoiser(denoiser, scale)

        def cond_fn(start: int, stop: int) -> dict[str, Any]:
            cond, cmask = self.condition(audio_feats[:, start:stop], text, text_mask, ema=use_ema)
            kw: dict[str, Any] = {"cond": cond, "cond_mask": cmask}
            if up is not None:
                kw["low_res"] = up[:, :, start:stop]
                kw["aug_sigma"] = torch.full((B,), float(self.hparams.sample_aug_sigma), device=device)
            return kw

        def denoise(x, sigma, **kw):
            return cfg(x, sigma, **kw)

        shape = (B, 1, T, R, R)
        hop = long_form_hop or self.hparams.long_form_hop
        if T <= self.clip_frames:
            kw = cond_fn(0, T)
            return sampler(lambda x, s: denoise(x, s, **kw), shape, generator=generator, device=device).float()
        lf = LongFormSampler(sampler, window=self.clip_frames, hop=hop)
        return lf(denoise, shape, cond_fn=cond_fn, generator=generator, device=device).float()

    # ------------------------------------------------------------------------------------------
    # validation / test

    def base_stage(self) -> "Wav2UTIDiffusion | None":
        """The base stage named by ``low_res_ckpt`` (super-resolution stage only), loaded once and kept
        off the module tree: it is neither trained nor saved with this stage's checkpoint."""
        path = self.hparams.get("low_res_ckpt")
        if self.stage != "super_resolution" or not path:
            return None
        base = self.__dict__.get("_base_stage")
        if base is None:
            from articulate.cli.synthesize_uti import load_wav2uti
            from articulate.errors import InputError

            base = load_wav2uti(path)
            if getattr(base, "stage", None) != "base" or not hasattr(base, "sampler"):
                raise InputError(path, "low_res_ckpt must be a base-stage diffusion checkpoint")
            problem = timing_mismatch(base, self)
            if problem:
                raise InputError(path, problem)
            self.__dict__["_base_stage"] = base
        return base.to(self.device)

    @torch.no_grad()
    def cascade_low_res(self, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        """The base stage's samples for ``batch`` at ``low_res_size``: what the SR stage sees at test
        time in the paper's cascade (validation uses the downsampled ground truth instead)."""
        base = self.base_stage()
        if "audio" not in batch:
            raise ValueError("cascaded evaluation needs the raw audio in the batch")
        T = batch["video"].shape[2]
        feats = base.audio_encoder(batch["audio"].float(), fps=base.fps, n_frames=T)
        text, tmask = base.text_features({"text": list(batch["text"])}, ema=True)
        return self.to_low_res(base.generate(feats, text, tmask, generator=generator))

    def to_low_res(self, video: torch.Tensor) -> torch.Tensor:
        """A base stage's video at this SR stage's ``low_res_size`` (area-resized when it differs)."""
        return video if video.shape[-1] == self.low_res_size else resize_video(video, self.low_res_size, "area")

    def _sample_batch(self, batch: dict[str, Any], n: int, cascade: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples for the first ``n`` items. Super-resolution stage: from the base stage's samples when
        ``cascade`` and ``low_res_ckpt`` is set, else from the downsampled ground truth."""
        sub = {k: (v[:n] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}
        g = torch.Generator(device=self.device).manual_seed(self.hparams.val_seed)
        text, tmask = self.text_features(sub, ema=True)
        low = None
        if self.stage == "super_resolution":
            if cascade and self.base_stage() is not None:
                low = self.cascade_low_res(sub, torch.Generator(device=self.device).manual_seed(self.hparams.val_seed + 1))
            else:
                low = self.to_low_res(sub["video"])
        pred = self.generate(self.audio_features(sub), text, tmask, low_res=low, generator=g)
        return pred, sub["video"]

    def _eval_step(self, batch: dict[str, Any], batch_idx: int, prefix: str) -> dict[str, Any]:
        B = batch["video"].shape[0]
        g = torch.Generator(device=self.device).manual_seed(self.hparams.val_seed + batch_idx)
        loss = self._loss(batch, generator=g, drop=False)
        self.log(f"{prefix}/loss", loss, batch_size=B, sync_dist=True)
        seen = batch_idx * B
        limit = self.hparams.val_num_clips if prefix == "val" else float("inf")
        if seen >= limit:
            return {}  # nothing sampled: the metrics callback skips an empty outputs dict
        n = int(min(B, limit - seen))
        pred, real = self._sample_batch(batch, n, cascade=prefix == "test")
        rmse, psnr = (self.val_rmse, self.val_psnr) if prefix == "val" else (self.test_rmse, self.test_psnr)
        idx = batch["sample_index"][:n] if "sample_index" in batch else None
        rmse.update(pred, real, sample_index=idx)
        psnr.update(pred, real, sample_index=idx)
        self.log(f"{prefix}/rmse", rmse, batch_size=n)
        self.log(f"{prefix}/psnr", psnr, batch_size=n)
        if prefix == "val" and batch_idx == 0:
            self._val_pngs = [(real[:2].detach().cpu(), pred[:2].detach().cpu())]
        return video_outputs(pred, real, self.fps, idx)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, batch_idx, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer is None or self.trainer.sanity_checking:
            return
        # trainer.log_dir is a collective (broadcast) under DDP: every rank must ask for it.
        out = sample_dir(self)
        if self._val_pngs and self.trainer.is_global_zero:
            real, pred = self._val_pngs[0]
            save_comparison_png(out / f"step{self.global_step:07d}.png", real, pred)

    # ------------------------------------------------------------------------------------------
    # frozen encoders: feature cache, checkpoints

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "attach_features"):
            return
        if abs(float(dm.fps) - self.fps) > 1e-6 or int(dm.clip_frames) != self.clip_frames:
            raise ValueError(f"model fps/clip_frames ({self.fps}, {self.clip_frames}) differ from the data's "
                             f"({dm.fps}, {dm.clip_frames}); set both in the config")
        attach_frozen_features(self, dm)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        drop_frozen_pretrained(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_frozen_pretrained(self, checkpoint)


def timing_mismatch(base: LightningModule, sr: LightningModule) -> str | None:
    """Why a base stage and a super-resolution stage cannot form a cascade (fps or clip length), else None."""
    if abs(float(base.fps) - float(sr.fps)) > 1e-6 or int(base.clip_frames) != int(sr.clip_frames):
        return (f"the base and super-resolution stages differ in fps or clip length "
                f"({float(base.fps):g} fps, {int(base.clip_frames)} frames vs {float(sr.fps):g} fps, {int(sr.clip_frames)} frames)")
    return None


def video_outputs(pred: torch.Tensor, real: torch.Tensor, fps: float, index: torch.Tensor | None) -> dict[str, Any]:
    """The callbacks' outputs protocol for videos: ``[B,1,T,H,W]`` in [0, 1] (the module works in [-1, 1])."""
    return {"video_pred": ((pred.float().clamp(-1, 1) + 1) / 2), "video_target": ((real.float() + 1) / 2),
            "fps": float(fps), "sample_index": index}


def video_size(resolution: int) -> int:
    return int(resolution)


# ----------------------------------------------------------------------------------------------
# helpers shared with the DNN baseline


def save_component_hparams(module: LightningModule, components: list[str]) -> None:
    """``save_hyperparameters`` that keeps the components' YAML config but never pickles modules.

    Built by LightningCLI, the hyperparameters are the config (class_path + init_args of every
    component), so ``load_from_checkpoint`` rebuilds the whole model from the checkpoint alone
    (``synthesize-uti`` relies on it). Built directly in Python, the components are live objects:
    they are left out (their weights are in the state dict; pass them again when loading).
    """
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    frame = __import__("inspect").currentframe().f_back
    module.save_hyperparameters(ignore=[] if _given_hyperparameters.get() is not None else components, frame=frame)


def _encoder_device(module: nn.Module, fallback: torch.device) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return fallback


def attach_frozen_features(module: LightningModule, dm) -> None:
    """Fill the feature cache with the frozen encoders' outputs (rank 0 first) and attach it."""
    trainer = module.trainer
    audio_enc = module.audio_encoder
    text_enc = getattr(module, "text_encoder", None)
    device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
    fps = float(dm.fps)
    audio_fn = audio_key = text_fn = text_key = None
    if getattr(audio_enc, "frozen", False):
        audio_enc.to(device)
        audio_key = audio_enc.cache_key() + f":fps={fps:g}:sr={dm.sample_rate}"

        def audio_fn(audio: np.ndarray, n_frames: int) -> np.ndarray:
            with torch.no_grad():
                x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(device)
                return audio_enc(x, fps=fps, n_frames=n_frames)[0].float().cpu().numpy()

    if text_enc is not None and getattr(text_enc, "frozen", False):
        text_enc.to(device)
        text_key = text_enc.cache_key()

        def text_fn(text: str) -> np.ndarray:
            with torch.no_grad():
                feats, mask = text_enc([text])
                return feats[0][mask[0]].float().cpu().numpy()

    if audio_fn is None and text_fn is None:
        return
    if trainer is not None and trainer.world_size > 1:
        if trainer.is_global_zero:
            dm.attach_features(audio_fn, audio_key, text_fn, text_key, compute=True)
        trainer.strategy.barrier("wav2uti_feature_cache")
        if not trainer.is_global_zero:
            dm.attach_features(audio_fn, audio_key, text_fn, text_key, compute=True)
    else:
        dm.attach_features(audio_fn, audio_key, text_fn, text_key, compute=True)


def _frozen_prefixes(module: nn.Module) -> list[str]:
    return [f"{name}." for name, m in module.named_modules() if name and getattr(m, "pretrained_frozen", False)]


def drop_frozen_pretrained(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    prefixes = _frozen_prefixes(module)
    sd = checkpoint.get("state_dict", {})
    for k in [k for k in sd if any(k.startswith(p) for p in prefixes)]:
        del sd[k]


def restore_frozen_pretrained(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    prefixes = _frozen_prefixes(module)
    sd = checkpoint.setdefault("state_dict", {})
    for k, v in module.state_dict().items():
        if any(k.startswith(p) for p in prefixes) and k not in sd:
            sd[k] = v


def sample_dir(module: LightningModule) -> Path:
    """``<log_dir>/wav2uti_samples/<run version>``; asks ``trainer.log_dir`` (a DDP collective) on every rank."""
    trainer = module.trainer
    out = Path(trainer.log_dir or trainer.default_root_dir) / "wav2uti_samples"
    version = getattr(module.logger, "version", None) if module.logger is not None else None
    return out / str(version) if version not in (None, "") else out


def save_comparison_png(path: Path, real: torch.Tensor, pred: torch.Tensor, max_frames: int = 8) -> Path:
    """Rows: real / generated frames of up to two clips ([B,1,T,H,W] in [-1,1]) -> 8-bit PNG, each row enlarged
    (nearest neighbour) to at least 128 px so that 32-64 px frames are legible."""
    import imageio.v3 as iio

    from articulate.utils.atomic import atomic_path
    from articulate.utils.images import enlarge

    rows = []
    for b in range(real.shape[0]):
        t_idx = np.linspace(0, real.shape[2] - 1, min(max_frames, real.shape[2])).round().astype(int)
        for v in (real, pred):
            frames = ((v[b, 0, t_idx].clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
            rows.append(np.concatenate(list(frames), axis=1))
    img = np.concatenate([enlarge(r, min_height=128) for r in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, img, extension=".png")
    return path
