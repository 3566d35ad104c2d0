"""The papers' tables from one command: every row x fold x seed is one resumable fit + test.

The generic part: a :class:`Plan` of :class:`Row` s (variant overlays on a direction's config stack), run in
seed-major order, each run a JSON record (:mod:`articulate.experiments.runner`), the table, paired tests and
figures written at the end. Each direction's plan is its own module: :mod:`articulate.experiments.mri2audio_plan`
(Table 1 of the tagged-MRI paper), :mod:`articulate.experiments.wav2uti_plan` (Tables 1-2 of the audio-textual
diffusion paper).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from articulate.experiments.runner import RunSpec, load_records, run_one
from articulate.experiments.tables import aggregate, paired_markdown, paired_tests, write_rows_csv, write_table


@dataclass
class Row:
    """A table row: variant overlays (``configs/<direction>/<variant>.yaml``) on the direction's config stack."""

    label: str
    variants: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    # A super-resolution row: the row (same fold and seed) whose checkpoint is its base stage, so
    # that its test samples the whole cascade.
    low_res_from: str | None = None


@dataclass
class Plan:
    experiment: str  # the direction
    preset: str | None  # its preset (QUICK) or None for the paper configuration
    rows: list[Row]
    metrics: list[tuple[str, str]]  # (key in the test results, column title)
    folds: list[int]
    seeds: list[int]
    common: list[str]  # overrides applied to every run (QUICK presets, data location)
    header: str
    examples: Callable[[Any], dict[str, np.ndarray]] | None = None
    # Rows read from another row's records: (label, {metric: key in those records, or "=text" shown as
    # it is}, source row label; default the second row).
    extra_rows: list[tuple] = field(default_factory=list)
    csv_metrics: list[str] = field(default_factory=list)  # aggregated into table.csv, not shown in table.md
    # Run before the rows (e.g. training the contour tracker): (out_dir, logger) -> overrides for every row.
    prepare: Callable[[Path, str], list[str]] | None = None
    # Paired tests on per-recording values: (row A, row B) pairs, (per-recording key, title) measures, and
    # pseudo-rows (label -> (source row, key suffix)), e.g. a floor logged beside a model.
    pairs: list[tuple[str, str]] = field(default_factory=list)
    paired_metrics: list[tuple[str, str]] = field(default_factory=list)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: Callable[[list[dict[str, Any]], list[dict[str, Any]], Path], list[str]] | None = None
    # per-run plain values kept in the record (its "per_recording" entry feeds the paired tests)
    details: Callable[[Any], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Reproduction:
    """What ``articulate reproduce <direction>`` runs, named by the direction record (``Direction.reproduce``):
    ``add_arguments(parser)`` adds the direction's own options; ``plan(args, extra)`` builds its :class:`Plan` from
    the parsed options (with the common ``quick`` and ``seeds``) and the LightningCLI overrides every run gets."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    plan: Callable[[argparse.Namespace, list[str]], Plan]


def row_configs(plan: Plan, row: Row) -> list[str]:
    """The row's ``--config`` stack, in the registry's one order."""
    from articulate.directions import get_direction

    return get_direction(plan.experiment).config_stack(row.variants, plan.preset)


def specs(plan: Plan, extra_args: list[str] | None = None) -> list[RunSpec]:
    """Seed-major order, so that a partial run already holds complete trials."""
    return [
        RunSpec(plan.experiment, row.label, row_configs(plan, row), plan.common + row.overrides + list(extra_args or []),
                fold, seed)
        for seed in plan.seeds for fold in plan.folds for row in plan.rows
    ]


def label_notes(records: list[dict[str, Any]]) -> list[str]:
    """Metrics computed with random-initialised stand-in feature networks are flagged in the table."""
    flagged = sorted({k for r in records for k in r["metrics"] if "NOT_COMPARABLE" in k})
    if not flagged:
        return []
    return ["**Stand-in features**: " + ", ".join(flagged) + " were computed with random-initialised feature "
            "networks (pretrained weights not installed): NOT COMPARABLE with published figures."]


def finish(plan: Plan, out_dir: Path) -> dict[str, Any]:
    records = [r for r in load_records(out_dir) if r["spec"]["model"] in {row.label for row in plan.rows}]
    # a metric logged under a NOT_COMPARABLE name fills its column, and the header says so
    for r in records:
        for key in list(r["metrics"]):
            if key.endswith("_NOT_COMPARABLE"):
                r["metrics"].setdefault(key[: -len("_NOT_COMPARABLE")], r["metrics"][key])
    metric_keys = [k for k, _ in plan.metrics] + list(plan.csv_metrics)
    table = aggregate(records, [row.label for row in plan.rows], metric_keys)
    for extra in plan.extra_rows:
        label, mapping = extra[0], extra[1]
        source = extra[2] if len(extra) > 2 else plan.rows[1].label
        read = {m: k for m, k in mapping.items() if not k.startswith("=")}
        src = [{"spec": {**r["spec"], "model": label}, "metrics": {m: r["metrics"].get(k) for m, k in read.items()}}
               for r in records if r["spec"]["model"] == source]
        (row,) = aggregate(src, [label], metric_keys)
        for m, k in mapping.items():
            if k.startswith("="):  # a stated value (e.g. the true video's RMSE: 0 by definition)
                row[f"{m}_mean"], row[f"{m}_std"] = k[1:], None
        table.append(row)
    paired = paired_tests(records, plan.pairs, plan.paired_metrics, plan.aliases) if plan.pairs else []
    notes = plan.notes(table, paired, out_dir) if plan.notes is not None else []
    header = "\n\n".join([plan.header, *notes, *label_notes(records)])
    footer = ""
    if paired:
        footer = ("## Paired tests per test recording\n\nEach recording's value is the mean over seeds of the "
                  "mean over its test frames; the tests pair the recordings both rows scored (two-sided, "
                  "uncorrected for the number of comparisons).\n\n" + paired_markdown(paired))
        write_rows_csv(paired, out_dir / "paired_tests.csv")
    write_table(table, plan.metrics, out_dir / "table.md", header=header, footer=footer)
    from articulate.experiments.plots import bar_chart, example_figures

    bar_chart(table, plan.metrics, out_dir / "metrics.png", title=plan.experiment)
    example_figures(out_dir, plan.experiment)
    return {"table": table, "records": len(records)}


def with_base_stage(spec: RunSpec, plan: Plan, out_dir: Path) -> RunSpec:
    """A super-resolution row's spec with ``low_res_ckpt`` = its base row's checkpoint (same fold
    and seed; seed-major order runs the base row first)."""
    row = next((r for r in plan.rows if r.label == spec.model), None)
    if row is None or not row.low_res_from:
        return spec
    base_id = RunSpec(spec.experiment, row.low_res_from, [], fold=spec.fold, seed=spec.seed).run_id
    path = out_dir / "runs" / f"{base_id}.json"
    ckpt = json.loads(path.read_text()).get("checkpoint") if path.exists() else None
    if not ckpt:
        raise RuntimeError(f"{spec.model}: its base stage {row.low_res_from!r} (run {base_id}) has no checkpoint "
                           f"in {path}; the cascade cannot be tested")
    return replace(spec, overrides=[*spec.overrides, f"--model.init_args.cascade.low_res_ckpt={ckpt}"])


def reproduce(plan: Plan, out_dir: Path, extra_args: list[str] | None = None, logger: str = "csv") -> dict[str, Any]:
    out_dir = Path(out_dir)
    start = time.perf_counter()
    shared = plan.prepare(out_dir, logger) if plan.prepare is not None else []
    todo = specs(plan, list(extra_args or []) + shared)
    for i, spec in enumerate(todo, 1):
        done = (out_dir / "runs" / f"{spec.run_id}.json").exists()
        print(f"[{i}/{len(todo)}] {spec.model} fold {spec.fold} seed {spec.seed}" + (" (done, skipped)" if done else ""),
              flush=True)
        want_examples = plan.examples if (spec.fold == plan.folds[0] and spec.seed == plan.seeds[0]) else None
        if not done:
            spec = with_base_stage(spec, plan, out_dir)
        run_one(spec, out_dir, logger=logger, examples=want_examples, details=plan.details)
    summary = finish(plan, out_dir)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
