"""The bench's measuring tools: variants, builds from the configs, timers, CPU and memory counters."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
    """fp32 everywhere; on a GPU also bf16 autocast, bf16 + channels_last and bf16 + torch.compile."""
    if device != "cuda":
        return [Variant("fp32")]
    return [
        Variant("fp32"),
        Variant("bf16", precision="bf16-mixed"),
        Variant("bf16+channels_last", precision="bf16-mixed", channels_last=True),
        Variant("bf16+compile", precision="bf16-mixed", compile=True),
    ]


@dataclass
class BenchContext:
    """What every direction's sections get: the mode, the device and the repetition counts."""

    quick: bool
    device: str
    train_steps: int
    warmup: int
    loader_batches: int
    repeats: int
    only: tuple[str, ...] = ()  # section names to run (empty: all)

    @classmethod
    def make(cls, quick: bool, device: str, only: tuple[str, ...] = ()) -> BenchContext:
        steps, warmup = (3, 1) if quick else (20, 3)
        return cls(quick, device, steps, warmup, 5 if quick else 30, 3 if quick else 20, tuple(only))

    def wants(self, section: str) -> bool:
        return not self.only or section in self.only


def build(configs: list[str], overrides: list[str] | None = None):
    """Instantiate model and DataModule from configs exactly as ``articulate fit`` would."""
    from articulate.training.lightning_cli import ArticulateCLI

    args: list[str] = []
    for cfg in configs:
        args += ["--config", cfg]
    cli = ArticulateCLI(args=args + _QUIET_TRAINER + list(overrides or []), run=False)
    return cli.model, cli.datamodule


def rss_peak_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _children(pid: int) -> list[int]:
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def cpu_times() -> tuple[float, float]:
    """(user, system) CPU seconds of this process and its live children (DataLoader workers are not
    reaped until the loader ends, so ``RUSAGE_CHILDREN`` would miss them); Linux /proc, else getrusage."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    user, sys_ = me.ru_utime, me.ru_stime
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in _children(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11]) / tick
            sys_ += int(fields[12]) / tick
        except (OSError, ValueError, IndexError):
            continue
    return user, sys_


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


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


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], device: str, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def autocast(device: str, variant: Variant):
    """bf16 autocast for a bf16 variant on ``device`` (any device type torch autocasts), else a no-op."""
    if variant.precision.startswith("bf16"):
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class StepTimer(Callback):
    """Per training batch after ``warmup``: the wall time of its compute (forward, backward, optimizer; data
    loading excluded), and over the whole timed span the wall time, CPU time (user/system, workers included)
    and batches, data loading included."""

    def __init__(self, warmup: int):
        self.warmup, self.times, self.batch_sizes = warmup, [], []
        self._start = 0.0
        self.span: dict[str, float] | None = None
        self._span_start: tuple[float, float, float] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sync(pl_module.device.type)
        self._start = time.perf_counter()
        if self.warmup == 0 and batch_idx == 0:
            self._span_start = (self._start, *cpu_times())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync(pl_module.device.type)
        now = time.perf_counter()
        if batch_idx >= self.warmup:
            self.times.append(now - self._start)
            self.batch_sizes.append(_batch_size(batch))
        if batch_idx == self.warmup - 1:
            self._span_start = (now, *cpu_times())
        elif self._span_start is not None and batch_idx >= self.warmup:
            t0, u0, s0 = self._span_start
            u, s = cpu_times()
            self.span = {"batches": batch_idx - self.warmup + 1, "wall": now - t0, "user": u - u0, "sys": s - s0}


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


def apply_variant(model: torch.nn.Module, variant: Variant) -> None:
    """channels_last weights (2D and 3D convolutions) and/or torch.compile of the trainable networks."""
    if variant.channels_last:
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
                m.to(memory_format=torch.channels_last_3d)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.to(memory_format=torch.channels_last)
    if variant.compile:
        _compile_networks(model)


def training_throughput(configs: list[str], overrides: list[str], steps: int, warmup: int, device: str,
                        variant: Variant) -> tuple[dict[str, Any], Any]:
    """Train ``warmup + steps`` batches; returns (figures, the DataModule).

    ``items_per_second``/``step_seconds``: the compute alone (median batch); ``batches_per_second``: the
    whole loop over the timed batches (data loading, logging and callbacks included); ``sys_share``:
    system / (user + system) CPU time in that span (page faults, thread wake-ups and I/O show up there).
    """
    model, dm = build(configs, overrides)
    apply_variant(model, variant)
    timer = StepTimer(warmup)
    trainer = Trainer(
        # batches, not max_steps: under manual optimisation (mri2audio's F, A, D) a batch is 3 optimizer steps
        accelerator=device, devices=1, precision=variant.precision, max_epochs=1, limit_train_batches=warmup + steps,
        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )
    load = load_average()
    with memory_section(device) as mem:
        trainer.fit(model, datamodule=dm)
    step_s = statistics.median(timer.times)
    batch = statistics.median(timer.batch_sizes)
    out = {"variant": variant.name, "steps_timed": len(timer.times), "batch_size": batch,
           "step_seconds": step_s, "items_per_second": batch / step_s, "load_average": [load, load_average()], **mem}
    span = timer.span
    if span and span["wall"] > 0:
        cpu = span["user"] + span["sys"]
        out.update(batches_per_second=span["batches"] / span["wall"], user_seconds=span["user"],
                   sys_seconds=span["sys"], sys_share=span["sys"] / cpu if cpu > 0 else None,
                   cpu_seconds_per_batch=cpu / span["batches"])
    return out, dm


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


def median_ms(times: list[float]) -> float:
    return 1000.0 * statistics.median(times)


def environment(device: str) -> dict[str, Any]:
    from articulate.training.runtime import state

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "load_average": load_average(), "runtime": state(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def guard(results: list, fn: Callable[[], Any]) -> None:
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
