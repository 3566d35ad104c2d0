"""Machine-independent cost figures: FLOPs of one network evaluation, and per second of generated video.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplications, convolutions and
attention; a multiply-add counts 2 FLOPs; normalisations and elementwise work are not counted, a few
percent for these networks). The networks run on PyTorch's ``meta`` device when they can: shapes only,
no arithmetic, so counting a paper-size U-Net takes a second on any machine (CPU otherwise).

Per second of video (the wav2uti denoiser, :func:`video_second_flops`): Heun's method with ``steps`` steps
evaluates the network ``2 * steps - 1`` times per window (a classifier-free-guided evaluation is one
batched call on twice the batch: 2x the FLOPs); the long-form sampler covers a long video with windows of
``window`` frames every ``hop`` frames, i.e. ``fps / hop`` windows per second of video (a single clip of
one second needs ``len(window_starts(fps, window, hop))``, slightly more).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "denoiser_call", "denoiser_flops", "video_second_flops"]


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` (no autograd). Attention runs as its math decomposition (matmuls), which the
    counter sees: it has no formula for the CPU flash-attention kernel and would count such calls as 0."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def denoiser_call(generator, frames: int, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The denoiser of a :class:`~articulate.inference.wav2uti.DiffusionGenerator` and the arguments of one
    evaluation on a ``frames``-frame window at batch 1 (condition from the generator's own encoders and
    fusion, super-resolution input when the stage needs one)."""
    feats = torch.zeros(1, frames, _feature_dim(generator))
    text, tmask = generator.text_features(["a ba ka"])
    cond, cmask = generator.condition(feats, text, tmask)
    R = int(generator.resolution)
    kw: dict[str, Any] = {"x": torch.zeros(1, 1, frames, R, R), "sigma": torch.ones(1), "cond": cond, "cond_mask": cmask}
    if generator.stage == "super_resolution":
        kw["low_res"] = torch.zeros(1, 1, frames, R, R)
        kw["aug_sigma"] = torch.full((1,), float(generator.sample_aug_sigma))
    kw = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    return generator.denoiser, kw


def _feature_dim(generator) -> int:
    enc = generator.audio_encoder
    for name in ("out_dim", "dim", "n_mels"):
        if isinstance(getattr(enc, name, None), int):
            return int(getattr(enc, name))
    # an encoder that does not say: run it on a short silence
    wav = torch.zeros(1, int(generator.sample_rate) // 10)
    return int(generator.audio_features(wav, n_frames=2).shape[-1])


def denoiser_flops(generator, frames: int) -> dict[str, Any]:
    """FLOPs of one denoiser evaluation on a ``frames``-frame window (batch 1, guidance off)."""
    net, kw = denoiser_call(generator, frames)
    try:
        meta = copy.deepcopy(net).to("meta")
        mkw = {k: (v.to("meta") if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        flops, where = count_flops(lambda: meta(**mkw)), "meta"
    except Exception:  # noqa: BLE001 - an op without a meta kernel: count on the CPU instead
        flops, where = count_flops(lambda: net(**kw)), "cpu"
    return {"flops_per_evaluation": flops, "frames": int(frames), "resolution": int(generator.resolution),
            "stage": generator.stage, "counted_on": where,
            "parameters": sum(p.numel() for p in net.parameters())}


def video_second_flops(flops_per_evaluation: int, steps: int, fps: float, window: int, hop: int,
                       guidance_scale: float = 1.0) -> dict[str, Any]:
    """FLOPs per second of video at ``steps`` Heun steps with the long-form sampler's ``window``/``hop``."""
    from articulate.diffusion.long_form import window_starts

    evaluations = 2 * int(steps) - 1
    guided = 2 if float(guidance_scale) != 1.0 else 1
    per_window = flops_per_evaluation * evaluations * guided
    windows_long = float(fps) / int(hop)
    one_second = int(round(float(fps)))
    windows_clip = len(window_starts(one_second, int(window), int(hop))) if one_second > window else 1
    return {"steps": int(steps), "evaluations_per_window": evaluations, "guidance_factor": guided,
            "window": int(window), "hop": int(hop), "fps": float(fps),
            "windows_per_second": windows_long, "flops_per_window": per_window,
            "flops_per_video_second": per_window * windows_long,
            "windows_in_a_one_second_clip": windows_clip, "flops_per_one_second_clip": per_window * windows_clip}
