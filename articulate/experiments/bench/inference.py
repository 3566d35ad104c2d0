"""Inference figures: mri2audio latency per sequence, wav2uti sampling time and the denoiser's FLOPs."""

from __future__ import annotations

from typing import Any

import torch

from articulate.experiments.bench.core import (
    Variant,
    apply_variant,
    autocast,
    build,
    median_ms,
    memory_section,
    time_call,
)


def mri2audio_inference(configs: list[str], device: str, variant: Variant, repeats: int) -> dict[str, Any]:
    """Per-sequence latency (batch 1) of MRI -> mel and mel -> waveform, as synthesize-audio runs them."""
    module, dm = build(configs)  # the DataModule is built, not set up: no data is read
    model = module.to_inference().to(device).eval()  # what synthesize-audio runs
    apply_variant(model, variant)
    mri = torch.rand(1, 1, *model.input_shape, device=device)
    length = int(dm.crop_samples)
    with memory_section(device) as mem, torch.no_grad():
        with autocast(device, variant):
            mel_times = time_call(lambda: model(mri), device, repeats, warmup=2)
        mel = model(mri).float()
        wav_times = time_call(lambda: model.waveform(mel, length=length), device, repeats, warmup=1)
    return {"variant": variant.name, "mel_ms": median_ms(mel_times), "waveform_ms": median_ms(wav_times),
            "total_ms": median_ms(mel_times) + median_ms(wav_times),
            "griffin_lim_iters": getattr(model, "griffin_lim_iters", None), **mem}


def _hop(model) -> int:
    return int(model.long_form_hop or max(1, int(model.clip_frames) // 2))


def wav2uti_flops(configs: list[str]) -> dict[str, Any]:
    """FLOPs of one denoiser evaluation on one window, and per second of video at the config's sampler
    steps (machine-independent; :mod:`articulate.experiments.flops`)."""
    from articulate.experiments.flops import denoiser_flops, video_second_flops

    module, _ = build(configs)
    model = module.to_inference().eval()
    row = denoiser_flops(model, int(model.clip_frames))
    row.update(video_second_flops(row["flops_per_evaluation"], int(model.sampler.num_steps), float(model.fps),
                                  int(model.clip_frames), _hop(model), float(model.guidance_scale)))
    row["configs"] = list(configs)
    return row


def wav2uti_sampling(configs: list[str], device: str, variant: Variant, steps: int, frames: int) -> dict[str, Any]:
    """Seconds to sample ``frames`` video frames with ``steps`` Heun steps, scaled per second of video.

    A super-resolution stage needs a low-resolution video: a random one of the base resolution is
    given (the cost of producing it is the base stage's row).
    """
    from articulate.diffusion import HeunSampler
    from articulate.diffusion.long_form import window_starts

    module, _ = build(configs)
    model = module.to_inference().to(device).eval()  # what synthesize-uti runs
    apply_variant(model, variant)
    from articulate.networks.wav2uti.encoders import pad_context

    audio = torch.randn(1, int(frames / model.fps * model.sample_rate), device=device) * 0.1
    c = model.condition_context
    feats = model.audio_features(pad_context(audio, c, model.sample_rate, model.fps), n_frames=frames + 2 * c)
    text, tmask = model.text_features(["a ba ka"])
    low = None
    if model.stage == "super_resolution":
        low = torch.rand(1, 1, frames, model.low_res_size, model.low_res_size, device=device) * 2 - 1
    base = model.sampler
    sampler = HeunSampler(num_steps=steps, sigma_min=base.sigma_min, sigma_max=base.sigma_max, rho=base.rho)

    def run():
        g = torch.Generator(device=device).manual_seed(0)
        with autocast(device, variant):
            return model.generate(feats, text, tmask, low_res=low, generator=g, sampler=sampler)

    with memory_section(device) as mem:
        times = time_call(run, device, repeats=1, warmup=0 if device == "cpu" else 1)
    seconds_of_video = frames / model.fps
    # The network is >99% of sampling time (articulate.diffusion.benchmark), so the cost of one second
    # of video at the configured step count follows from the measured cost of one window evaluation.
    window, hop = int(model.clip_frames), _hop(model)
    windows_measured = len(window_starts(frames, window, hop)) if frames > window else 1
    per_window_eval = times[0] / (windows_measured * sampler.nfe)
    one_second = int(round(model.fps))
    windows_per_second = len(window_starts(one_second, window, hop)) if one_second > window else 1
    default_steps = int(base.num_steps)
    return {"variant": variant.name, "resolution": int(model.resolution), "stage": model.stage, "steps": steps,
            "frames": frames, "seconds": times[0], "seconds_per_video_second": times[0] / seconds_of_video,
            "window_evaluation_seconds": per_window_eval,
            "default_steps": default_steps,
            "estimated_seconds_per_video_second_at_default_steps":
                per_window_eval * windows_per_second * (2 * default_steps - 1),
            "denoiser_parameters": sum(p.numel() for p in model.denoiser.parameters()), **mem}


def save_untrained_checkpoint(configs: list[str], path, overrides: list[str] | None = None):
    """A checkpoint of the configs' model with its initial weights, in the layout ``articulate fit`` writes
    (what ``synthesize-uti`` loads): the bench measures the tools, which do not depend on trained weights."""
    from pathlib import Path

    module, _ = build(configs, overrides)
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, Path(path))
    return Path(path)


def synthesis_memory(configs: list[str], seconds: list[float], steps: int, device: str,
                     overrides: list[str] | None = None) -> dict[str, Any]:
    """Peak resident memory and time of ``articulate synthesize-uti`` (a fresh process each) for speech of each
    length: memory must not grow with the length (windows go through the network in budgeted chunks). The
    peak does not depend on the step count, so few steps are sampled; the time per second of video is
    reported at those steps and scaled to the config's."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    rows = []
    with tempfile.TemporaryDirectory(prefix="articulate-bench-") as tmp:
        ckpt = save_untrained_checkpoint(configs, Path(tmp) / "model.ckpt", overrides)
        default_steps = int(torch.load(ckpt, weights_only=True)["hyper_parameters"]["sampler"]["init_args"]["num_steps"])
        for s in seconds:
            sr = 16000
            t = np.arange(int(s * sr)) / sr
            wav = Path(tmp) / f"speech_{s:g}s.wav"
            sf.write(wav, (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2).astype(np.float32), sr)
            cmd = [sys.executable, "-m", "articulate.cli.main", "synthesize-uti", "--ckpt", str(ckpt), "--audio", str(wav),
                   "--out", str(Path(tmp) / f"out_{s:g}s.mp4"), "--steps", str(steps), "--device", device, "--json"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"synthesize-uti failed on {s:g} s: {proc.stderr.strip().splitlines()[-1:]}")
            summary = json.loads(proc.stdout.strip().splitlines()[-1])
            per_s = float(summary["seconds_generate_per_video_second"])
            rows.append({"speech_seconds": s, "frames": summary["frames"], "steps": steps,
                         "peak_rss_mb": summary["peak_rss_mb"], "seconds_generate": summary["seconds_generate"],
                         "seconds_per_video_second": per_s,
                         "estimated_seconds_per_video_second_at_default_steps":
                             per_s * (2 * default_steps - 1) / (2 * steps - 1), "default_steps": default_steps})
    peaks = [r["peak_rss_mb"] for r in rows if r["peak_rss_mb"]]
    return {"configs": list(configs), "device": device, "rows": rows,
            "peak_ratio_longest_to_shortest": (peaks[-1] / peaks[0]) if len(peaks) > 1 else None}
