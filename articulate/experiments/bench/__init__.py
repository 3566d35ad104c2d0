"""Speed and memory benchmarks of every registered direction, built from the YAML configs users train with.

``articulate bench`` (``make bench [QUICK=1]``) loops over :func:`articulate.directions.directions`; each
direction whose record names a ``bench`` function (``"articulate.experiments.bench:mri2audio_sections"``)
gets its sections in the JSON (:mod:`.sections`). What is measured (medians over timed repetitions after
warm-up):

- ``train`` / ``train_quick``: training throughput of the paper config (the bench's small phantom) and
  of the QUICK preset (as ``articulate train --quick`` runs it): the compute alone (``items_per_second``,
  between ``on_train_batch_start`` and ``on_train_batch_end``), the whole loop (``batches_per_second``,
  data loading included), and the user/system CPU time of that span (``sys_share``; workers included);
- ``data_loading``: items/s of the configured train loader, to compare with what training consumes;
- mri2audio ``inference``: latency per sequence, MRI -> mel and mel -> waveform (batched Griffin-Lim);
- wav2uti ``flops``: FLOPs of one denoiser evaluation on one window and per second of video at the
  configured steps (machine-independent, :mod:`articulate.experiments.flops`); ``sampling``: measured
  time per second of video per stage of the cascade;
- ``memory``: peak memory of one training step at the config's batch size for every config that trains,
  each in a fresh process (:mod:`.memory`; RSS on CPU, ``torch.cuda.max_memory_allocated`` on GPU).

On a GPU training and inference also run with bf16 autocast, channels_last and torch.compile, so the
JSON shows the figures with and without them. ``environment`` records the machine, the thread count,
the process settings (:mod:`articulate.training.runtime`) and the load average: on a shared machine the
wall-clock figures move with the load, CPU seconds per batch much less.
"""

from __future__ import annotations

from typing import Any

import torch

from articulate.experiments.bench.core import (  # noqa: F401 - the bench's public names
    BenchContext,
    StepTimer,
    Variant,
    apply_variant,
    build,
    cpu_times,
    environment,
    loader_throughput,
    memory_section,
    rss_peak_mb,
    time_call,
    training_throughput,
    variants,
)
from articulate.experiments.bench.core import (
    guard as _guard,
)

# Configs and overrides the training benchmarks build: the paper configurations reading a small phantom
# cohort (enough recordings for full batches, quick to generate).
MRI_BENCH = (["configs/mri2audio.yaml"], ["--data.init_args.phantom={subjects: 12}", "--data.init_args.crops.train=20"])
WAV2UTI_BENCH = (["configs/wav2uti.yaml"], ["--data.init_args.phantom={subjects: 8}", "--data.init_args.max_eval_clips=4"])


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


def run_benchmarks(quick: bool = False, device: str | None = None, directions: tuple[str, ...] = (),
                   only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every registered direction with a ``bench`` entry (or those named), each section (or those named)."""
    from articulate.directions import directions as registered
    from articulate.directions import resolve

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    ctx = BenchContext.make(quick, device, only)
    out: dict[str, Any] = {"quick": quick, "environment": environment(device)}
    for d in registered():
        if not d.bench or (directions and d.name not in directions):
            continue
        try:
            out[d.name] = resolve(d.bench)(ctx)
        except Exception as err:  # noqa: BLE001 - one direction's failure is reported, the others still run
            out[d.name] = {"error": f"{type(err).__name__}: {err}"}
    out["environment"]["load_average_end"] = environment(device)["load_average"]
    return out


from articulate.experiments.bench.report import summary_rows  # noqa: E402
from articulate.experiments.bench.sections import mri2audio_sections, wav2uti_sections  # noqa: E402

__all__ = ["BenchContext", "MRI_BENCH", "WAV2UTI_BENCH", "StepTimer", "Variant", "build", "cpu_times", "loader_throughput",
           "mri2audio_sections", "run_benchmarks", "summary_rows", "training_throughput", "variants", "wav2uti_sections"]
