"""Aggregate run records into a paper-style table: mean +- std over folds and seeds."""

from __future__ import annotations

import csv
import io
import statistics
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from articulate.utils.atomic import atomic_path


def aggregate(records: Sequence[dict[str, Any]], rows: Sequence[str], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per model label (in ``rows`` order) with mean, std and count for each metric.

    As the papers, the spread is the std over random trials (seeds) of the fold-averaged metric;
    with a single seed it is the std over folds.
    """
    table = []
    for label in rows:
        mine = [r for r in records if r["spec"]["model"] == label]
        row: dict[str, Any] = OrderedDict(model=label, runs=len(mine))
        for m in metrics:
            by_seed: dict[int, list[float]] = {}
            for r in mine:
                v = r["metrics"].get(m)
                if v is not None:
                    by_seed.setdefault(r["spec"]["seed"], []).append(float(v))
            if len(by_seed) > 1:
                values = [statistics.fmean(v) for v in by_seed.values()]
            else:
                values = [x for v in by_seed.values() for x in v]
            row[f"{m}_mean"] = statistics.fmean(values) if values else None
            row[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        table.append(row)
    return table


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def to_markdown(table: Sequence[dict[str, Any]], metrics: Sequence[tuple[str, str]], header: str = "", digits: int = 3) -> str:
    """``metrics`` is a list of (key, column title)."""
    out = io.StringIO()
    if header:
        out.write(header.rstrip() + "\n\n")
    titles = ["Methods"] + [t for _, t in metrics] + ["runs"]
    out.write("| " + " | ".join(titles) + " |\n")
    out.write("|" + "---|" * len(titles) + "\n")
    for row in table:
        cells = [row["model"]] + [_fmt(row[f"{k}_mean"], row[f"{k}_std"], digits) for k, _ in metrics] + [str(row["runs"])]
        out.write("| " + " | ".join(cells) + " |\n")
    return out.getvalue()


def write_table(table: Sequence[dict[str, Any]], metrics: Sequence[tuple[str, str]], md_path: Path, header: str = "") -> None:
    md_path = Path(md_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(to_markdown(table, metrics, header))
    csv_path = md_path.with_suffix(".csv")
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0].keys()) if table else ["model"])
            writer.writeheader()
            writer.writerows(table)
