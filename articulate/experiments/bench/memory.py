"""Peak memory of one training step per config, each measured in a fresh process.

The measuring process (``run_child``; ``main(["--device", "cpu", "--batch-sizes", "1,2", "--config", A, ...,
"--", overrides...])``) builds the model and DataModule from the configs (as ``articulate fit`` does, with the same process
settings and the config's ``cpu_allocator``: :mod:`articulate.training.runtime`), then for each batch size
trains one batch (for mri2audio's translator: one D step and one F/A step) and prints one JSON line
``MEMORY {...}``: the RSS before the step, the peak RSS during it (``VmHWM``, reset before the step
through ``/proc/self/clear_refs``) and on CUDA ``torch.cuda.max_memory_allocated``. The parent runs one
process per batch size: with the ``reuse`` allocator a process keeps its heap, so a second batch size in
the same process would start from the first one's high-water mark.

:func:`peak_memory` (the parent side) probes batch sizes 1 and 2 first, extrapolates linearly to the
config's batch size, and runs the config's own batch size in a second fresh process only when the
estimate fits under the limit (default: 16 GB, or 70% of the memory available now, whichever is lower),
so a config that would not fit is reported as an estimate instead of taking the machine down. QUICK
stops after the probes (estimates). Data loading runs in the process (``num_workers=0``): workers are
separate processes with their own (copy-on-write) memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from articulate.utils.memory import status_kb

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PREFIX = "MEMORY "
# The process settings before torch is imported (importing this package imports torch).
_CHILD = ("import sys; from articulate.training.runtime import configure; configure(); "
          "from articulate.experiments.bench.memory import main; sys.exit(main(sys.argv[1:]))")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def available_mb() -> float | None:
    try:
        m = re.search(r"^MemAvailable:\s+(\d+)\s+kB", Path("/proc/meminfo").read_text(), re.M)
    except OSError:
        return None
    return float(m.group(1)) / 1024 if m else None


def default_limit_mb() -> float:
    avail = available_mb()
    return min(16384.0, 0.7 * avail) if avail else 16384.0


def configured_batch_size(configs: list[str], root: Path = PROJECT_ROOT) -> int | None:
    """``data.init_args.batch_size`` of the last config in the stack that sets it."""
    import yaml

    size = None
    for cfg in configs:
        doc = yaml.safe_load((root / cfg).read_text()) or {}
        value = ((doc.get("data") or {}).get("init_args") or {}).get("batch_size")
        if value is not None:
            size = int(value)
    return size


def _one_step(configs: list[str], overrides: list[str], batch: int | None, device: str) -> dict[str, Any]:
    import torch
    from lightning.pytorch import Trainer

    from articulate.experiments.bench.core import build

    extra = ["--data.init_args.num_workers=0"] + ([f"--data.init_args.batch_size={batch}"] if batch else [])
    model, dm = build(configs, list(overrides) + extra)
    dm.setup("fit")
    reset = _reset_peak()
    rss0 = status_kb("VmRSS")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(accelerator=device, devices=1, max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                      num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - start
    out = {"batch_size": int(dm.batch_size), "rss_before_step_mb": rss0 / 1024 if rss0 else None,
           "rss_peak_mb": (status_kb("VmHWM") or 0) / 1024 if reset else None, "step_seconds": seconds}
    if out["rss_peak_mb"] is None:  # no clear_refs: the process peak (first batch size only is exact)
        import resource

        out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    del trainer, model, dm
    return out


def main(argv: list[str] | None = None) -> int:
    from articulate.training.runtime import configure

    configure()  # the settings `articulate train` runs with (allocator, OpenMP)
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(prog="bench memory probe")
    p.add_argument("--config", action="append", required=True)
    p.add_argument("--batch-sizes", default="", help="comma-separated, ascending (empty: the config's own)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()] or [None]
    for batch in sizes:
        print(PREFIX + json.dumps(_one_step(args.config, overrides, batch, args.device)), flush=True)
    return 0


def run_child(configs: list[str], overrides: list[str], batch_sizes: list[int] | None, device: str,
              timeout: float | None = None) -> list[dict[str, Any]]:
    """Run the measuring process; its ``MEMORY`` lines, or one ``{"error": ...}`` (with the last stderr line)."""
    cmd = [sys.executable, "-c", _CHILD, "--device", device,
           "--batch-sizes", ",".join(str(b) for b in (batch_sizes or []))]
    for cfg in configs:
        cmd += ["--config", cfg]
    cmd += ["--", *overrides]
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # the bench never downloads pretrained models
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    try:
        proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"error": f"timed out after {timeout:.0f} s"}]
    rows = [json.loads(line[len(PREFIX):]) for line in proc.stdout.splitlines() if line.startswith(PREFIX)]
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else (tail[-1] if tail else f"exit {proc.returncode}")
        rows.append({"error": why[:300]})
    return rows


def peak_memory(configs: list[str], overrides: list[str], device: str, quick: bool,
                limit_mb: float | None = None, probes: tuple[int, int] = (1, 2)) -> dict[str, Any]:
    """Peak memory of one training step at the config's batch size: measured, or estimated from probes."""
    limit = default_limit_mb() if limit_mb is None else float(limit_mb)
    want = configured_batch_size(configs)
    row: dict[str, Any] = {"configs": list(configs), "batch_size": want, "limit_mb": round(limit)}
    key = "gpu_peak_mb" if device == "cuda" else "rss_peak_mb"
    if want is not None and want <= max(probes):  # as small as a probe: measure it directly
        probe_sizes = [want]
    else:
        probe_sizes = [b for b in probes if want is None or b < want]
    # one fresh process per batch size: neither the peak nor the allocator's heap carries over
    got = [row for b in probe_sizes for row in run_child(configs, overrides, [b], device)]
    errors = [r["error"] for r in got if "error" in r]
    points = [r for r in got if "error" not in r]
    row["probes"] = points
    if errors and not points:
        row["error"] = errors[0]
        return row
    if want is not None and points and points[-1]["batch_size"] == want:
        row.update(measured=True, **{k: points[-1].get(k) for k in ("rss_peak_mb", "gpu_peak_mb", "rss_before_step_mb")})
        return row
    if len(points) >= 2 and want is not None:
        (b1, p1), (b2, p2) = [(r["batch_size"], r[key]) for r in points[:2]]
        estimate = p1 + (want - b1) * (p2 - p1) / (b2 - b1)
        row[f"estimated_{key}"] = estimate
    else:
        estimate = None
    if quick or estimate is None:
        if errors:
            row["error"] = errors[0]
        return row
    if estimate > limit:
        row["skipped"] = f"estimated {estimate:.0f} MB > limit {limit:.0f} MB: not run at batch {want}"
        return row
    final = run_child(configs, overrides, [want], device)
    if final and "error" not in final[0]:
        row.update(measured=True, **{k: final[0].get(k) for k in ("rss_peak_mb", "gpu_peak_mb", "rss_before_step_mb",
                                                                   "step_seconds")})
    else:
        row["error"] = final[0]["error"] if final else "no result"
    return row

