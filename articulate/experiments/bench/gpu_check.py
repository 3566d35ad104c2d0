"""`make gpu-check`: what a GPU must show in one short call (`articulate bench --only gpu_check --device cuda`).

* ``gpu_train``: the paper's 64-px base stage (``configs/wav2uti.yaml`` on the bench's small phantom) trained
  ``steps`` optimizer steps in bf16 autocast, without and with ``torch.compile``: its throughput, the first and
  last training losses (finite, and falling over the run) and the peak memory.
* ``gpu_cascade``: one second of 112-px video sampled through the cascade (the 64-px base stage, then the
  112-px super-resolution stage) from one second of speech, at the configs' own step counts: the wall time
  per stage and in all (untrained weights: the cost does not depend on them).

Not part of a plain ``make bench``: it is named with ``--only gpu_check``. On a CPU the two checks run with tiny
networks and a few steps (``tests/test_gpu_check.py``): the structure, not the figures.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from lightning import Callback, Trainer

from articulate.experiments.bench.core import Variant, apply_variant, autocast, build, memory_section, sync

PAPER_BASE = ["configs/wav2uti.yaml"]
PAPER_SR = ["configs/wav2uti.yaml", "configs/wav2uti/res112.yaml"]


class LossTrace(Callback):
    """The training loss of every batch (the value ``training_step`` returned)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.losses.append(float(loss.detach().float()))


def train_check(configs: list[str], overrides: list[str], steps: int, device: str, variant: Variant) -> dict[str, Any]:
    """``steps`` optimizer steps of ``configs`` under ``variant``: seconds per step after the first tenth (compile
    and warm-up excluded), the losses' start and end (means of the first and last tenth) and the peak memory."""
    model, dm = build(configs, overrides)
    apply_variant(model, variant)
    trace = LossTrace()
    trainer = Trainer(accelerator=device, devices=1, precision=variant.precision, max_steps=steps, max_epochs=-1,
                      limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[trace])
    stamps: list[float] = []

    class Clock(Callback):  # epoch-agnostic (the bench's StepTimer times the batches of one epoch)
        def on_train_batch_end(self, *args) -> None:
            sync(device)
            stamps.append(time.perf_counter())

    trainer.callbacks.append(Clock())
    with memory_section(device) as mem:
        trainer.fit(model, datamodule=dm)
    losses = trace.losses
    tenth = max(1, len(losses) // 10)
    timed = stamps[tenth - 1:] if len(stamps) > tenth else stamps
    per_step = (timed[-1] - timed[0]) / (len(timed) - 1) if len(timed) > 1 else None
    start, end = sum(losses[:tenth]) / tenth, sum(losses[-tenth:]) / tenth
    return {"variant": variant.name, "steps": len(losses), "seconds_per_step": per_step,
            "loss_start": start, "loss_end": end, "finite": all(math.isfinite(v) for v in losses),
            "loss_fell": end < start, **mem}


def cascade_check(base_configs: list[str], sr_configs: list[str], device: str, variant: Variant,
                  seconds: float = 1.0, steps: int | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """``seconds`` of video through the base stage and the super-resolution stage (untrained), timed per stage."""
    import numpy as np

    from articulate.inference.wav2uti import UltrasoundCascade

    base = build(base_configs, overrides)[0].to_inference().to(device).eval()
    sr = build(sr_configs, overrides)[0].to_inference().to(device).eval()
    rate = base.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    wav = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2).astype(np.float32)
    options = {"steps": steps} if steps else {}
    times: dict[str, float] = {}

    def timed(name, fn):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times[name] = time.perf_counter() - t0
        return out

    with memory_section(device) as mem, torch.no_grad(), autocast(device, variant):
        low = timed("base_seconds", lambda: UltrasoundCascade(base).synthesize(wav, "a ba ka", **options))
        full = timed("cascade_seconds", lambda: UltrasoundCascade(base, sr).synthesize(wav, "a ba ka", **options))
    return {"variant": variant.name, "speech_seconds": seconds, "frames": int(full.shape[0]),
            "resolution": [int(low.shape[-1]), int(full.shape[-1])], "steps": {"base": steps or base.sampler.num_steps,
                                                                               "super_resolution": steps or sr.sampler.num_steps},
            **times, "sr_seconds": times["cascade_seconds"] - times["base_seconds"], "finite": bool(np.isfinite(full).all()),
            **mem}


def gpu_check(ctx, steps: int = 300) -> dict[str, Any]:
    """The two sections (see the module docstring) with the paper's configs, on ``ctx.device`` (a GPU: on a CPU
    the paper configs take minutes per step; the tests run the two checks with tiny networks instead)."""
    from articulate.experiments import bench as B

    out: dict[str, Any] = {"gpu_train": [], "gpu_cascade": []}
    variants = [Variant("bf16", precision="bf16-mixed"), Variant("bf16+compile", precision="bf16-mixed", compile=True)]
    for v in variants:
        B._guard(out["gpu_train"], lambda v=v: train_check(PAPER_BASE, B.WAV2UTI_BENCH[1], steps, ctx.device, v))
    B._guard(out["gpu_cascade"], lambda: cascade_check(PAPER_BASE, PAPER_SR, ctx.device, variants[0]))
    return out
