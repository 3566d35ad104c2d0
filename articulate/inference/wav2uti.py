"""wav2uti inference: speech (+ transcript) -> ultrasound video, rebuilt from a checkpoint.

:class:`UltrasoundGenerator` is the interface every wav2uti model offers (the diffusion model and
the DNN baseline): frame-aligned audio features in, video ``[B, 1, T, R, R]`` in [-1, 1] out, any T.
:class:`DiffusionGenerator` samples the EDM with its Heun sampler (long utterances with the
long-form sampler); :class:`FrameRegressor` is the DNN baseline's one forward pass;
:class:`UltrasoundCascade` chains a base stage and a super-resolution stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from articulate.checkpoints import Checkpoint
from articulate.diffusion import CFGDenoiser, HeunSampler, LongFormSampler
from articulate.diffusion.long_form import DEFAULT_MEMORY_BUDGET_MB
from articulate.errors import InputError
from articulate.inference.base import Predictor
from articulate.networks.wav2uti.encoders import pad_context
from articulate.transforms.video import resize_video


def pretrained_frozen(module: nn.Module | None) -> bool:
    """Encoders whose weights come from their hub id/path, never from our checkpoints (wav2vec 2.0, BERT)."""
    return module is not None and bool(getattr(module, "pretrained_frozen", False))


def fuse_condition(fusion: nn.Module, audio_feats: torch.Tensor, text: torch.Tensor | None,
                   text_mask: torch.Tensor | None, context: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused condition of frames ``[c, N - c)`` from features of ``N`` frames (``context`` c frames of
    speech on each side, which the fusion's temporal layers read and the output drops)."""
    cond, mask = fusion(audio_feats, text, text_mask)
    if context:
        cond, mask = cond[:, context:cond.shape[1] - context], mask[:, context:mask.shape[1] - context]
    return cond, mask


class UltrasoundGenerator(Predictor):
    """Base of the wav2uti inference objects: ``generate(audio_feats [B, T + 2c, D], ...) -> [B, 1, T, R, R]``,
    where c is ``condition_context``: frames of speech the features carry on each side of the video's."""

    direction = "wav2uti"
    stage = "base"

    def __init__(self, audio_encoder: nn.Module, resolution: int, clip_frames: int, fps: float,
                 text_encoder: nn.Module | None = None, condition_context: int = 0):
        super().__init__()
        self.audio_encoder, self.text_encoder = audio_encoder, text_encoder
        self.resolution, self.clip_frames, self.fps = int(resolution), int(clip_frames), float(fps)
        self.condition_context = int(condition_context)

    @property
    def sample_rate(self) -> int:
        return int(self.audio_encoder.sample_rate)

    def _rebuilt_elsewhere(self, key: str) -> bool:
        name = key.split(".", 1)[0]
        return pretrained_frozen(getattr(self, name, None))

    def audio_features(self, wav: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Waveforms ``[B, L]`` at :attr:`sample_rate` -> ``[B, n_frames, D]``."""
        return self.audio_encoder(wav.float(), fps=self.fps, n_frames=n_frames)

    def text_features(self, texts: list[str]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.text_encoder is None:
            return None, None
        return self.text_encoder(list(texts))

    def generate(self, audio_feats: torch.Tensor, text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                 low_res: torch.Tensor | None = None, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def from_audio(self, wav: np.ndarray, n_frames: int, text: str = "", low_res: torch.Tensor | None = None,
                   seed: int = 0, **options: Any) -> torch.Tensor:
        """Mono audio at :attr:`sample_rate` covering ``n_frames`` frames -> video ``[1, 1, n_frames, R, R]``."""
        c = self.condition_context
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None].to(self.device)
        feats = self.audio_features(pad_context(x, c, self.sample_rate, self.fps), n_frames + 2 * c)
        text_feats, text_mask = self.text_features([text])
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        return self.generate(feats, text_feats, text_mask, low_res=low_res, generator=g, **options)


class FrameRegressor(UltrasoundGenerator):
    """The DNN baseline: one ultrasound frame per audio feature frame (context window inside the network)."""

    def __init__(self, network: nn.Module, audio_encoder: nn.Module, resolution: int = 64, clip_frames: int = 16,
                 fps: float = 60.0, condition_context: int = 0):
        super().__init__(audio_encoder, resolution, clip_frames, fps, condition_context=condition_context)
        self.network = network

    def generate(self, audio_feats, text=None, text_mask=None, low_res=None, generator=None,
                 memory_budget_mb: float | None = None, **options) -> torch.Tensor:
        """Frames in chunks that fit ``memory_budget_mb``; each chunk reads the network's context beyond its
        edges, so the video is the same as from one call."""
        c, k = self.condition_context, int(self.network.context)
        n = audio_feats.shape[1]
        T = n - 2 * c
        if T < 1:
            raise ValueError(f"audio_feats of {n} frames hold no frame beyond the {c}-frame context")
        per_call = max(1, int((memory_budget_mb or DEFAULT_MEMORY_BUDGET_MB) * 2**20
                              // self.network.bytes_per_frame()))
        outs = []
        for a in range(0, T, per_call):
            b = min(T, a + per_call)  # output frames [a, b) = feature frames [a + c, b + c)
            lo, hi = max(0, a + c - k), min(n, b + c + k)
            y = self.network(audio_feats[:, lo:hi].float())
            outs.append(y[:, :, a + c - lo:b + c - lo])
        return torch.cat(outs, dim=2).clamp(-1.0, 1.0)


class DiffusionGenerator(UltrasoundGenerator):
    """The audio(-textual) EDM: Heun sampling of ``denoiser`` conditioned on the fused audio (+ text).

    ``stage="super_resolution"`` also conditions on the low-res video (noise-augmented with
    ``sample_aug_sigma``, upsampled bilinearly). Utterances longer than one clip use the long-form
    sampler (windows of ``clip_frames``, hop ``long_form_hop``, default half a clip); the condition is
    fused per window so that every window sees what training saw.
    """

    def __init__(self, denoiser: nn.Module, audio_encoder: nn.Module, fusion: nn.Module,
                 text_encoder: nn.Module | None = None, sampler: HeunSampler | None = None, stage: str = "base",
                 resolution: int = 64, clip_frames: int = 16, fps: float = 60.0, low_res_size: int = 64,
                 sample_aug_sigma: float = 0.05, guidance_scale: float = 1.0, long_form_hop: int | None = None,
                 condition_context: int = 0, standardizer: nn.Module | None = None):
        super().__init__(audio_encoder, resolution, clip_frames, fps, text_encoder, condition_context)
        self.standardizer = standardizer  # the diffusion runs on standardised video (articulate.diffusion.standardize)
        if stage not in ("base", "super_resolution"):
            raise ValueError(f"stage must be 'base' or 'super_resolution', got {stage!r}")
        self.denoiser, self.fusion = denoiser, fusion
        self.sampler = sampler if sampler is not None else HeunSampler(num_steps=32)
        self.stage, self.low_res_size = stage, int(low_res_size)
        self.sample_aug_sigma, self.guidance_scale = float(sample_aug_sigma), float(guidance_scale)
        self.long_form_hop = long_form_hop

    def load_weights(self, ck: Checkpoint) -> None:
        # Checkpoints written before the Lightning EMA callback kept the EMA copy under "ema."; it wins.
        ema = {k[4:]: v for k, v in ck.state_dict.items() if k.startswith("ema.")}
        if ema:
            ck = Checkpoint(ck.path, {**ck.raw, "state_dict": {**ck.state_dict, **ema}})
        super().load_weights(ck)

    def condition(self, audio_feats: torch.Tensor, text: torch.Tensor | None, text_mask: torch.Tensor | None):
        """Frame-aligned condition ``[B, T, C]`` of features ``[B, T + 2c, D]`` (see :func:`fuse_condition`)."""
        return fuse_condition(self.fusion, audio_feats, text, text_mask, self.condition_context)

    def upsample_low_res(self, low: torch.Tensor, aug_sigma: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The super-resolution stage's conditioning video: upsampled (bilinear), standardised like the video it
        generates, then noise-augmented."""
        up = resize_video(low, self.resolution, "bilinear")
        if self.standardizer is not None:
            up = self.standardizer(up)
        noise = torch.randn(up.shape, generator=generator, device=up.device, dtype=up.dtype)
        return up + aug_sigma.reshape(-1, 1, 1, 1, 1).to(up) * noise

    def to_low_res(self, video: torch.Tensor) -> torch.Tensor:
        """A base stage's video at this stage's ``low_res_size`` (area-resized when it differs)."""
        return video if video.shape[-1] == self.low_res_size else resize_video(video, self.low_res_size, "area")

    def with_steps(self, steps: int) -> HeunSampler:
        return self.sampler.replace(num_steps=int(steps))

    @torch.no_grad()
    def generate(self, audio_feats: torch.Tensor, text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                 low_res: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 guidance_scale: float | None = None, sampler: HeunSampler | None = None, steps: int | None = None,
                 long_form_hop: int | None = None, memory_budget_mb: float | None = None,
                 sigma_start: float | None = None) -> torch.Tensor:
        """Video ``[B, 1, T, R, R]`` in [-1, 1] for frame-aligned ``audio_feats [B, T + 2c, D]`` (any T).
        ``memory_budget_mb``: network memory for the windows of one call (long-form; default
        :data:`~articulate.diffusion.long_form.DEFAULT_MEMORY_BUDGET_MB`). ``sigma_start``: start the sampler's
        schedule at this level (:class:`~articulate.diffusion.HeunSampler`; default: the sampler's own)."""
        sampler = sampler or (self.with_steps(steps) if steps else self.sampler)
        if sigma_start is not None:
            sampler = sampler.replace(sigma_start=float(sigma_start))
        scale = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        c = self.condition_context
        B, T = audio_feats.shape[0], audio_feats.shape[1] - 2 * c
        if T < 1:
            raise ValueError(f"audio_feats of {audio_feats.shape[1]} frames hold no frame beyond the {c}-frame context")
        device = audio_feats.device
        up = aug = None
        if self.stage == "super_resolution":
            if low_res is None:
                raise ValueError("the super-resolution stage needs the low-res video (low_res=...)")
            aug = torch.full((B,), self.sample_aug_sigma, device=device)
            up = self.upsample_low_res(low_res.to(device).float(), aug, generator)
        cfg = CFGDenoiser(self.denoiser, scale)

        def cond_fn(start: int, stop: int) -> dict[str, Any]:
            cond, cmask = self.condition(audio_feats[:, start:stop + 2 * c], text, text_mask)
            kw: dict[str, Any] = {"cond": cond, "cond_mask": cmask}
            if up is not None:
                kw["low_res"], kw["aug_sigma"] = up[:, :, start:stop], aug
            return kw

        shape = (B, 1, T, self.resolution, self.resolution)
        if T <= self.clip_frames:
            kw = cond_fn(0, T)
            x = sampler(lambda x, s: cfg(x, s, **kw), shape, generator=generator, device=device).float()
        else:
            hop = long_form_hop or self.long_form_hop
            lf = LongFormSampler(sampler, window=self.clip_frames, hop=hop,
                                 memory_budget_mb=memory_budget_mb or DEFAULT_MEMORY_BUDGET_MB)
            x = lf(lambda x, s, **kw: cfg(x, s, **kw), shape, cond_fn=cond_fn, generator=generator, device=device).float()
        return self.standardizer.inverse(x, audio_feats, c) if self.standardizer is not None else x


def timing_mismatch(base: UltrasoundGenerator, super_res: UltrasoundGenerator) -> str | None:
    """Why a base stage and a super-resolution stage cannot form a cascade (fps or clip length), else None."""
    if abs(base.fps - super_res.fps) > 1e-6 or base.clip_frames != super_res.clip_frames:
        return (f"the base and super-resolution stages differ in fps or clip length ({base.fps:g} fps, "
                f"{base.clip_frames} frames vs {super_res.fps:g} fps, {super_res.clip_frames} frames)")
    return None


class UltrasoundCascade(nn.Module):
    """A base stage (diffusion or DNN) followed by a super-resolution diffusion stage (e.g. 64 -> 112 px)."""

    def __init__(self, base: UltrasoundGenerator, super_res: DiffusionGenerator | None = None, source: Any = None):
        super().__init__()
        if base.stage != "base":
            raise InputError(source, "this is a super-resolution stage checkpoint: give it as the second stage of a base one")
        if super_res is not None:
            if not (isinstance(super_res, DiffusionGenerator) and super_res.stage == "super_resolution"):
                raise InputError(source, "the second stage is not a super-resolution stage checkpoint")
            problem = timing_mismatch(base, super_res)
            if problem:
                raise InputError(source, problem)
        self.base, self.super_res = base, super_res  # (``sr`` is a sample rate everywhere else)

    @property
    def fps(self) -> float:
        return self.base.fps

    @property
    def sample_rate(self) -> int:
        return self.base.sample_rate

    @torch.no_grad()
    def synthesize(self, wav: np.ndarray, text: str = "", seed: int = 0, resample: Callable | None = None,
                   **options: Any) -> np.ndarray:
        """Mono audio at the base stage's rate -> frames ``[F, H, W]`` float32 in [0, 1], ``F = round(duration * fps)``.

        Audio shorter than one clip is padded with silence to one clip and the video cut back.
        ``resample(wav, sr_in, sr_out)`` converts the audio for a second stage with another encoder rate.
        """
        sr, fps, base = self.sample_rate, self.fps, self.base
        n_frames = int(round(wav.shape[0] / sr * fps))
        if n_frames < 1:
            raise ValueError(f"audio of {wav.shape[0] / sr * 1000:.1f} ms is shorter than one video frame "
                             f"({1000 / fps:.1f} ms at {fps:g} fps)")
        n_gen = max(n_frames, base.clip_frames)
        need = int(round(n_gen * sr / fps))
        wav_in = np.pad(wav, (0, max(0, need - wav.shape[0])))[: max(need, wav.shape[0])]
        # a DNN base has no sampler: only the memory budget applies to it
        opts = options if isinstance(base, DiffusionGenerator) else {k: v for k, v in options.items() if k == "memory_budget_mb"}
        video = base.from_audio(wav_in, n_gen, text, seed=seed, **opts)
        if self.super_res is not None:
            wav_sr = wav_in
            if self.super_res.sample_rate != sr:
                if resample is None:
                    raise ValueError("the stages' audio rates differ: pass resample=")
                wav_sr = resample(wav_in, sr, self.super_res.sample_rate)
            # the start level is the base stage's (chosen on its validation samples); the refiner keeps its own
            sr_opts = {k: v for k, v in options.items() if k != "sigma_start"}
            video = self.super_res.from_audio(wav_sr, n_gen, text, low_res=self.super_res.to_low_res(video), seed=seed + 1,
                                              **sr_opts)
        return ((video[0, 0, :n_frames].float().clamp(-1, 1) + 1) / 2).cpu().numpy().astype(np.float32)
