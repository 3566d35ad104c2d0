"""Run one configured fit + test in-process and keep its metrics as a JSON record.

A record is written atomically when the run finishes, so an interrupted reproduction resumes where it
stopped: runs whose record exists are not redone.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from articulate.utils.atomic import atomic_path


@dataclass
class RunSpec:
    """One cell of a table: a model (configs + overrides) on one fold with one seed."""

    experiment: str  # e.g. "mri2audio"
    model: str  # row label, e.g. "Ours w/o GAN"
    configs: list[str]
    overrides: list[str] = field(default_factory=list)
    fold: int | None = 0  # None: a DataModule without folds (no --data.init_args.fold)
    seed: int = 0

    @property
    def run_id(self) -> str:
        slug = "".join(c if c.isalnum() else "-" for c in self.model.lower()).strip("-")
        while "--" in slug:
            slug = slug.replace("--", "-")
        return f"{slug}_seed{self.seed}" if self.fold is None else f"{slug}_fold{self.fold}_seed{self.seed}"


def _plain(value: Any) -> Any:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return value
    return None if math.isnan(value) else value


def run_one(spec: RunSpec, out_dir: Path, logger: str = "csv", extra_args: list[str] | None = None,
            examples: Callable[[Any], dict[str, np.ndarray]] | None = None,
            details: Callable[[Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Fit then test ``spec`` and write ``out_dir/runs/<run_id>.json``; return the record.

    The test uses the best checkpoint when a ModelCheckpoint monitored a metric, else the last weights.
    ``examples(cli)``, when given, returns arrays (predictions next to targets) kept beside the record
    as ``<run_id>.examples.npz`` for the reproduction's figures. Per-recording test values for paired tests
    between rows (``{"recording": [ids], <measure>: [values]}``) are kept as the record's ``per_recording``:
    from the model's ``test_per_recording`` (the wav2uti modules) or from ``details(cli)["per_recording"]``;
    the rest of ``details(cli)`` is kept as ``details``.
    """
    from articulate.training.lightning_cli import ArticulateCLI, test_best

    record_path = Path(out_dir) / "runs" / f"{spec.run_id}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())

    run_dir = Path(out_dir) / "logs" / spec.run_id
    args: list[str] = []
    for cfg in spec.configs:
        args += ["--config", cfg]
    args += [f"--seed_everything={spec.seed}", f"--trainer.default_root_dir={run_dir}"]
    if spec.fold is not None:
        args.append(f"--data.init_args.fold={spec.fold}")
    if logger == "csv":
        args += ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={run_dir}"]
    else:
        args += [
            "--trainer.logger=articulate.loggers.ArticulateWandbLogger",
            f"--trainer.logger.init_args.save_dir={run_dir}",
            f"--trainer.logger.init_args.name={spec.run_id}",
            f"--trainer.logger.init_args.group={spec.experiment}",
        ]
    args += list(spec.overrides) + list(extra_args or [])

    start = time.perf_counter()
    cli = ArticulateCLI(args=args, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_s = time.perf_counter() - start
    results, ckpt = test_best(cli.trainer, cli.model, cli.datamodule, verbose=False)
    metrics = {k: _plain(v) for k, v in (results[0] if results else {}).items()}
    if examples is not None:
        arrays = examples(cli)
        ex_path = record_path.with_suffix(".examples.npz")
        ex_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(ex_path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
    extra = dict(details(cli)) if details is not None else None
    extra_per = extra.pop("per_recording", None) if extra else None
    record = {
        "spec": asdict(spec),
        "run_id": spec.run_id,
        "metrics": metrics,
        "details": extra,
        "fit_seconds": round(fit_s, 2),
        "total_seconds": round(time.perf_counter() - start, 2),
        "args": args,
        "checkpoint": ckpt,
    }
    per = cli.model.test_per_recording or extra_per
    if isinstance(per, dict) and per:
        record["per_recording"] = {k: [_plain(v) for v in vals] for k, vals in per.items()}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(record_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    return record


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    runs = Path(out_dir) / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))] if runs.is_dir() else []
