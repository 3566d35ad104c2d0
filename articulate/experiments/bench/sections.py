"""Each direction's bench sections: the functions the direction records name (``Direction.bench``).

A section function takes a :class:`~articulate.experiments.bench.core.BenchContext` and returns a dict of
sections (lists of rows or one row each); ``summary_rows`` formats the keys it knows and lists the others
by name. Sections shared by every direction: ``train`` (paper config, every variant of the device),
``train_quick`` (the QUICK preset as ``articulate train --quick`` runs it, its own data and workers; fp32, and
bf16 on a CPU with native bf16),
``data_loading`` and ``memory`` (every training config of the direction, see :mod:`.memory`).
"""

from __future__ import annotations

from typing import Any

from articulate.directions import Direction, get_direction


def training_configs(d: Direction) -> list[tuple[str, list[str]]]:
    """Every config of ``d`` that trains: the paper config, each variant the record names on top of it, and each
    preset."""
    rows = [("paper", d.config_stack())]
    rows += [(v, d.config_stack([v])) for v in sorted(d.variants)]
    rows += [(f"preset {p}", d.config_stack(preset=p)) for p in d.presets]
    return rows


def memory_rows(d: Direction, data_overrides: list[str], ctx) -> list[dict[str, Any]]:
    """Peak memory of one training step for every training config (paper configs read the bench's small
    phantom; presets their own data)."""
    from articulate.experiments import bench as B
    from articulate.experiments.bench.memory import peak_memory

    rows: list[dict[str, Any]] = []
    for label, stack in training_configs(d):
        over = [] if label.startswith("preset ") else data_overrides
        B._guard(rows, lambda s=stack, o=over: peak_memory(s, o, ctx.device, ctx.quick))
        rows[-1]["config"] = label
    return rows


def _train_quick(d: Direction, ctx) -> list[dict[str, Any]]:
    from articulate.experiments import bench as B

    rows: list[dict[str, Any]] = []
    stack = d.config_stack(preset="quick")
    for v in quick_variants(ctx.device):
        B._guard(rows, lambda v=v: B.training_throughput(stack, [], ctx.train_steps, ctx.warmup, ctx.device, v))
    return rows


def quick_variants(device: str) -> list:
    """The QUICK presets' variants: the first of :func:`variants` (fp32), plus bf16 autocast on a CPU with
    native bf16 (AVX512-BF16 or AMX; without it bf16 is emulated and slower). Whether a model trains as well
    with it is a separate measurement (docs/results/speed-memory.md)."""
    import torch

    from articulate.experiments import bench as B

    out = B.variants(device)[:1]
    if device == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        out.append(B.Variant("bf16", precision="bf16-mixed"))
    return out


def _training(d: Direction, paper: list[str], data: list[str], ctx) -> dict[str, Any]:
    """The sections every direction shares before its own: training (paper config, with data loading)
    and the QUICK preset's training, each when asked for."""
    from articulate.experiments import bench as B

    out: dict[str, Any] = {}
    if ctx.wants("train"):
        out.update(B._train_and_load(paper, data, ctx.train_steps, ctx.warmup, ctx.device, ctx.loader_batches))
    if ctx.wants("train_quick"):
        out["train_quick"] = _train_quick(d, ctx)
    return out


def mri2audio_sections(ctx) -> dict[str, Any]:
    """Training (paper config and QUICK preset), data loading, inference latency (translator and
    Lip2AudSpec), peak memory per config."""
    from articulate.experiments import bench as B
    from articulate.experiments.bench.inference import mri2audio_inference

    d = get_direction("mri2audio")
    paper, data = B.MRI_BENCH
    out: dict[str, Any] = {}
    out.update(_training(d, paper, data, ctx))
    if ctx.wants("inference"):
        out["inference"], out["lip2audspec_inference"] = [], []
        lip = d.config_stack(["lip2audspec"])
        for v in B.variants(ctx.device):
            B._guard(out["inference"], lambda v=v: mri2audio_inference(paper, ctx.device, v, ctx.repeats))
            B._guard(out["lip2audspec_inference"], lambda v=v: mri2audio_inference(lip, ctx.device, v, ctx.repeats))
    if ctx.wants("memory"):
        out["memory"] = memory_rows(d, data, ctx)
    return out


def wav2uti_sections(ctx) -> dict[str, Any]:
    """Training (paper config and QUICK preset), data loading, the denoiser's FLOPs, sampling time per
    second of video per stage, peak memory per config."""
    from articulate.experiments import bench as B
    from articulate.experiments.bench.inference import synthesis_memory, wav2uti_flops, wav2uti_sampling

    d = get_direction("wav2uti")
    paper, data = B.WAV2UTI_BENCH
    stages = {64: paper, 96: d.config_stack(["res96"]), 112: d.config_stack(["res112"])}
    out: dict[str, Any] = {}
    out.update(_training(d, paper, data, ctx))
    if ctx.wants("flops"):
        out["flops"] = []
        for cfgs in stages.values():
            B._guard(out["flops"], lambda c=cfgs: wav2uti_flops(c))
    if ctx.wants("sampling"):
        # On a GPU a whole second of video is sampled at 8 and 32 steps. On a CPU the paper-size network
        # needs hours per second of video, so one window with 2 (QUICK) or 4 steps is measured and the
        # default step count is estimated from it (the JSON names which figure is which).
        if ctx.device == "cuda":
            step_counts, frames = ([8] if ctx.quick else [8, 32]), (16 if ctx.quick else 60)
        else:
            step_counts, frames = ([2] if ctx.quick else [4]), 16
        out["sampling"] = []
        for v in B.variants(ctx.device)[:2]:
            for cfgs in stages.values():
                for steps in step_counts:
                    B._guard(out["sampling"], lambda c=cfgs, s=steps, v=v: wav2uti_sampling(c, ctx.device, v, s, frames))
    if ctx.wants("synthesis_memory"):
        # synthesize-uti on 2 s and 30 s of speech (60 s in a full run): the peak memory must not grow with the
        # length. Peak memory does not depend on the step count, so one step is sampled. QUICK: the QUICK
        # preset's network (the paper's takes minutes per window on a CPU).
        cfgs = d.config_stack([], "quick") if ctx.quick else paper
        secs = [2.0, 10.0] if ctx.quick else [2.0, 30.0, 60.0]
        out["synthesis_memory"] = []
        B._guard(out["synthesis_memory"], lambda: synthesis_memory(cfgs, secs, 1, ctx.device))
    if ctx.wants("memory"):
        out["memory"] = memory_rows(d, data, ctx)
    if "gpu_check" in ctx.only:  # named only: the paper configs for a few hundred steps (a GPU's check)
        from articulate.experiments.bench.gpu_check import gpu_check

        out.update(gpu_check(ctx))
    return out
