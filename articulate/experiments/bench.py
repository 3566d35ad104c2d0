"""Speed and memory benchmarks of both directions, built from the same YAML configs users train with.

What is measured (each figure is a median over timed repetitions after warm-up):

- training throughput (items/s) of the compute alone: the time between ``on_train_batch_start`` and
  ``on_train_batch_end``, so the data pipeline is measured separately;
- data-loading throughput (items/s) of the configured DataModule's train loader, to compare with what
  training consumes (loading must be faster than training or the accelerator starves);
- mri2audio inference latency per sequence: MRI -> mel, and mel -> waveform (batched Griffin-Lim);
- wav2uti sampling time per second of video for each resolution (stage of the cascade) and step count;
- peak memory: process RSS on CPU, ``torch.cuda.max_memory_allocated`` per section on GPU.

On a GPU each section also runs with bf16 autocast, channels_last and torch.compile where they apply,
so the JSON shows the figures with and without them.
"""

from __future__ import annotations

import contextlib
import gc
import platform
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from lightning.pytorch import Callback, Trainer

_QUIET_TRAINER = [
    "--trainer.logger=false",
    "--trainer.enable_checkpointing=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.callbacks=[]",
]


@dataclass
class Variant:
    """One way of running the same model: numerical precision and memory/compilation options."""

    name: str
    precision: str = "32-true"
    channels_last: bool = False
    compile: bool = False


def variants(device: str) -> list[Variant]:
    if device != "cuda":
        return [Variant("fp32")]
    return [
        Variant("fp32"),
        Variant("bf16", precision="bf16-mixed"),
        Variant("bf16+channels_last", precision="bf16-mixed", channels_last=True),
        Variant("bf16+compile", precision="bf16-mixed", compile=True),
    ]


def build(configs: list[str], overrides: list[str] | None = None):
    """Instantiate model and DataModule from configs exactly as ``articulate fit`` would."""
    from articulate.cli.lightning_cli import ArticulateCLI

    args: list[str] = []
    for cfg in configs:
        args += ["--config", cfg]
    cli = ArticulateCLI(args=args + _QUIET_TRAINER + list(overrides or []), run=False)
    return cli.model, cli.datamodule


def rss_peak_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextlib.contextmanager
def memory_section(device: str) -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    yield out
    if device == "cuda":
        torch.cuda.synchronize()
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["rss_peak_mb"] = rss_peak_mb()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], device: str, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


class StepTimer(Callback):
    """Wall time of each training step's compute (forward, backward, optimizer), data loading excluded."""

    def __init__(self, warmup: int):
        self.warmup, self.times, self.batch_sizes = warmup, [], []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        _sync(pl_module.device.type)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        _sync(pl_module.device.type)
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._start)
            self.batch_sizes.append(_batch_size(batch))


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                return int(v.shape[0])
    return 1


def _compile_networks(model: torch.nn.Module) -> None:
    """torch.compile every trainable top-level network (frozen encoders are off the module tree)."""
    for name, child in list(model.named_children()):
        if not any(p.requires_grad for p in child.parameters()):
            continue
        setattr(model, name, torch.compile(child))


def _apply_variant(model: torch.nn.Module, variant: Variant) -> None:
    if variant.channels_last:
        for m in model.modules():
            if isinstance(m, torch.nn.Conv3d):
                m.to(memory_format=torch.channels_last_3d)
            elif isinstance(m, torch.nn.Conv2d):
                m.to(memory_format=torch.channels_last)
    if variant.compile:
        _compile_networks(model)


def training_throughput(configs: list[str], overrides: list[str], steps: int, warmup: int, device: str,
                        variant: Variant) -> dict[str, Any]:
    model, dm = build(configs, overrides)
    _apply_variant(model, variant)
    timer = StepTimer(warmup)
    trainer = Trainer(
        # batches, not max_steps: under manual optimisation (mri2audio's F, A, D) a batch is 3 optimizer steps
        accelerator=device, devices=1, precision=variant.precision, max_epochs=1, limit_train_batches=warmup + steps,
        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )
    with memory_section(device) as mem:
        trainer.fit(model, datamodule=dm)
    step_s = statistics.median(timer.times)
    batch = statistics.median(timer.batch_sizes)
    return {"variant": variant.name, "steps_timed": len(timer.times), "batch_size": batch,
            "step_seconds": step_s, "items_per_second": batch / step_s, **mem}, dm


def loader_throughput(dm, batches: int) -> dict[str, Any]:
    """Items per second the DataModule's train loader delivers (with its configured workers)."""
    loader = dm.train_dataloader()
    it = iter(loader)
    first = next(it)  # worker start-up is not throughput
    n_items, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            break
        n_items += _batch_size(batch)
    elapsed = time.perf_counter() - start
    del first
    return {"batches": batches, "items": n_items, "seconds": elapsed,
            "items_per_second": n_items / elapsed if elapsed > 0 else None,
            "num_workers": getattr(loader, "num_workers", None)}


def _median_ms(times: list[float]) -> float:
    return 1000.0 * statistics.median(times)


def mri2audio_inference(configs: list[str], device: str, variant: Variant, repeats: int) -> dict[str, Any]:
    """Per-sequence latency (batch 1) of MRI -> mel and mel -> waveform, as synthesize-audio runs them."""
    module, dm = build(configs)  # the DataModule is built, not set up: no data is read
    model = module.to_inference().to(device).eval()  # what synthesize-audio runs
    _apply_variant(model, variant)
    mri = torch.rand(1, 1, *model.input_shape, device=device)
    length = int(dm.crop_samples)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if variant.precision.startswith("bf16")
                else contextlib.nullcontext())
    with memory_section(device) as mem, torch.no_grad():
        with autocast:
            mel_times = time_call(lambda: model(mri), device, repeats, warmup=2)
        mel = model(mri).float()
        wav_times = time_call(lambda: model.waveform(mel, length=length), device, repeats, warmup=1)
    return {"variant": variant.name, "mel_ms": _median_ms(mel_times), "waveform_ms": _median_ms(wav_times),
            "total_ms": _median_ms(mel_times) + _median_ms(wav_times),
            "griffin_lim_iters": getattr(model, "griffin_lim_iters", None), **mem}


def wav2uti_sampling(configs: list[str], device: str, variant: Variant, steps: int, frames: int,
                     base_configs: list[str] | None = None) -> dict[str, Any]:
    """Seconds to sample ``frames`` video frames with ``steps`` Heun steps, scaled per second of video.

    A super-resolution stage needs a low-resolution video: a random one of the base resolution is
    given (the cost of producing it is the base stage's row).
    """
    from articulate.diffusion import HeunSampler

    module, _ = build(configs)
    model = module.to_inference().to(device).eval()  # what synthesize-uti runs
    _apply_variant(model, variant)
    audio = torch.randn(1, int(frames / model.fps * model.sample_rate), device=device) * 0.1
    feats = model.audio_features(audio, n_frames=frames)
    text, tmask = model.text_features(["a ba ka"])
    low = None
    if model.stage == "super_resolution":
        low = torch.rand(1, 1, frames, model.low_res_size, model.low_res_size, device=device) * 2 - 1
    base = model.sampler
    sampler = HeunSampler(num_steps=steps, sigma_min=base.sigma_min, sigma_max=base.sigma_max, rho=base.rho)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if variant.precision.startswith("bf16")
                else contextlib.nullcontext())

    def run():
        g = torch.Generator(device=device).manual_seed(0)
        with autocast:
            return model.generate(feats, text, tmask, low_res=low, generator=g, sampler=sampler)

    with memory_section(device) as mem:
        times = time_call(run, device, repeats=1, warmup=0 if device == "cpu" else 1)
    seconds_of_video = frames / model.fps
    # The network is >99% of sampling time (articulate.diffusion.benchmark), so the cost of one second
    # of video at the configured step count follows from the measured cost of one window evaluation.
    from articulate.diffusion.long_form import window_starts

    window = int(model.clip_frames)
    hop = int(model.long_form_hop or max(1, window // 2))
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


def environment(device: str) -> dict[str, Any]:
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu_threads": torch.get_num_threads(), "platform": platform.platform()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _guard(results: list, fn: Callable[[], Any]) -> None:
    """A benchmark that cannot run on this machine is reported, not fatal for the others."""
    try:
        out = fn()
        results.append(out[0] if isinstance(out, tuple) else out)
    except Exception as err:  # noqa: BLE001 - recorded in the JSON with its message
        results.append({"error": f"{type(err).__name__}: {err}"})
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _train_and_load(configs: list[str], overrides: list[str], steps: int, warmup: int, device: str,
                    loader_batches: int) -> dict[str, Any]:
    """Training throughput for every variant, then the data loading of the first fit's DataModule."""
    section: dict[str, Any] = {"train": [], "data_loading": None}
    modules: list = []

    def train(v: Variant):
        res, dm = training_throughput(configs, overrides, steps, warmup, device, v)
        modules.append(dm)
        return res

    for v in variants(device):
        _guard(section["train"], lambda v=v: train(v))
    if modules:
        box: list = []
        _guard(box, lambda: loader_throughput(modules[0], loader_batches))
        section["data_loading"] = box[0]
    return section


# Configs and overrides the training benchmarks build: the paper configurations reading a small phantom
# cohort (enough recordings for full batches, quick to generate).
MRI_BENCH = (["configs/mri2audio.yaml"], ["--data.init_args.phantom={subjects: 12}", "--data.init_args.n_crops=20"])
WAV2UTI_BENCH = (["configs/wav2uti.yaml"], ["--data.init_args.phantom={subjects: 8}", "--data.init_args.max_eval_clips=4"])


def run_benchmarks(quick: bool = False, device: str | None = None) -> dict[str, Any]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    out: dict[str, Any] = {"quick": quick, "environment": environment(device)}
    train_steps, warmup = (3, 1) if quick else (20, 3)
    mri_cfg, mri_data = MRI_BENCH

    out["mri2audio"] = {"inference": [], "lip2audspec_inference": []}
    out["mri2audio"].update(_train_and_load(mri_cfg, mri_data, train_steps, warmup, device, 5 if quick else 30))
    for v in variants(device):
        _guard(out["mri2audio"]["inference"], lambda v=v: mri2audio_inference(mri_cfg, device, v, 3 if quick else 20))
        _guard(out["mri2audio"]["lip2audspec_inference"],
               lambda v=v: mri2audio_inference(mri_cfg + ["configs/mri2audio/lip2audspec.yaml"], device, v, 3 if quick else 20))

    w_cfg, w_data = WAV2UTI_BENCH
    out["wav2uti"] = {"sampling": []}
    out["wav2uti"].update(_train_and_load(w_cfg, w_data, train_steps, warmup, device, 5 if quick else 30))

    # On a GPU a whole second of video is sampled at 8 and 32 steps. On a CPU the paper-size network
    # needs hours per second of video, so one window with 2 (QUICK) or 4 steps is measured and the
    # default step count is estimated from it (the JSON names which figure is which).
    if device == "cuda":
        step_counts, frames = ([8] if quick else [8, 32]), (16 if quick else 60)
    else:
        step_counts, frames = ([2] if quick else [4]), 16
    stages = {64: w_cfg, 96: w_cfg + ["configs/wav2uti/res96.yaml"], 112: w_cfg + ["configs/wav2uti/res112.yaml"]}
    for v in variants(device)[:2]:
        for res, cfgs in stages.items():
            for steps in step_counts:
                _guard(out["wav2uti"]["sampling"], lambda c=cfgs, s=steps, v=v: wav2uti_sampling(c, device, v, s, frames))
    return out


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Short human-readable lines for the terminal."""
    rows: list[tuple[str, str]] = []

    def fmt(x, unit="", digits=2):
        return "n/a" if x is None else f"{x:.{digits}f}{unit}"

    for r in result["mri2audio"]["train"]:
        rows.append((f"mri2audio train [{r.get('variant', '?')}]", r.get("error") or f"{fmt(r['items_per_second'])} seq/s"))
    dl = result["mri2audio"].get("data_loading") or {}
    rows.append(("mri2audio data loading", dl.get("error") or f"{fmt(dl.get('items_per_second'))} seq/s"))
    for key, label in (("inference", "translator"), ("lip2audspec_inference", "lip2audspec")):
        for r in result["mri2audio"][key]:
            rows.append((f"mri2audio {label} latency [{r.get('variant', '?')}]", r.get("error") or
                         f"mel {fmt(r['mel_ms'], ' ms', 1)} + waveform {fmt(r['waveform_ms'], ' ms', 1)}"))
    for r in result["wav2uti"]["train"]:
        rows.append((f"wav2uti train [{r.get('variant', '?')}]", r.get("error") or f"{fmt(r['items_per_second'])} clips/s"))
    dl = result["wav2uti"].get("data_loading") or {}
    rows.append(("wav2uti data loading", dl.get("error") or f"{fmt(dl.get('items_per_second'))} clips/s"))
    for r in result["wav2uti"]["sampling"]:
        if "error" in r:
            rows.append(("wav2uti sampling", r["error"]))
            continue
        rows.append((f"wav2uti sample {r['resolution']}px {r['steps']} steps [{r['variant']}]",
                     f"{fmt(r['seconds_per_video_second'], ' s', 1)} per second of video"))
        if r.get("estimated_seconds_per_video_second_at_default_steps") is not None and r["steps"] != r.get("default_steps"):
            rows.append((f"  -> at the default {r['default_steps']} steps (estimated)",
                         f"{fmt(r['estimated_seconds_per_video_second_at_default_steps'], ' s', 0)} per second of video"))
    return rows
