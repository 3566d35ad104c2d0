"""Aggregate run records into a paper-style table: mean +- std over folds and seeds; paired tests between rows."""

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


def write_table(table: Sequence[dict[str, Any]], metrics: Sequence[tuple[str, str]], md_path: Path, header: str = "",
                footer: str = "") -> None:
    """``table.md`` (header, table, then ``footer``: e.g. the paired tests) and ``table.csv`` beside it."""
    md_path = Path(md_path)
    with atomic_path(md_path) as tmp:
        text = to_markdown(table, metrics, header)
        tmp.write_text(text + ("\n" + footer.rstrip() + "\n" if footer.strip() else ""))
    csv_path = md_path.with_suffix(".csv")
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0].keys()) if table else ["model"])
            writer.writeheader()
            writer.writerows(table)


# ---------------------------------------------------------------------------------------------
# paired tests between rows, per test recording


def per_recording(records: Sequence[dict[str, Any]], label: str, metric: str) -> dict[tuple[int, str], float]:
    """``(fold, recording) -> value`` of one row, averaged over seeds (records carry
    ``details.per_recording.<metric>``: ``{recording id: value}``)."""
    values: dict[tuple[int, str], list[float]] = {}
    for r in records:
        if r["spec"]["model"] != label:
            continue
        table = ((r.get("details") or {}).get("per_recording") or {}).get(metric) or {}
        for rec, v in table.items():
            if v is not None:
                values.setdefault((int(r["spec"].get("fold", 0)), str(rec)), []).append(float(v))
    return {k: statistics.fmean(v) for k, v in values.items()}


def paired_tests(records: Sequence[dict[str, Any]], reference: str, rows: Sequence[str], metric: str = "corr2d",
                 alpha: float = 0.05) -> list[dict[str, Any]]:
    """Each row against ``reference`` over the test recordings both scored: the per-recording metric
    (mean over seeds, so a recording is one pair) compared by a paired t-test and a Wilcoxon
    signed-rank test (two-sided). ``verdict`` states the ordering the tests support at ``alpha``
    (both must agree), else that the difference is not significant."""
    from scipy import stats

    ref = per_recording(records, reference, metric)
    out = []
    for label in rows:
        if label == reference:
            continue
        mine = per_recording(records, label, metric)
        keys = sorted(set(ref) & set(mine))
        row: dict[str, Any] = OrderedDict(model=label, reference=reference, metric=metric, n=len(keys))
        if len(keys) < 2:
            row.update(mean_diff=None, t_p=None, wilcoxon_p=None, wins=None, verdict="too few paired recordings")
            out.append(row)
            continue
        a = [mine[k] for k in keys]
        b = [ref[k] for k in keys]
        diff = [x - y for x, y in zip(a, b)]
        if all(d == 0 for d in diff):
            t_p = w_p = 1.0
        else:
            t_p = float(stats.ttest_rel(a, b).pvalue)
            w_p = float(stats.wilcoxon(a, b).pvalue)
        mean_diff = statistics.fmean(diff)
        wins = sum(d > 0 for d in diff) / len(diff)
        if t_p < alpha and w_p < alpha:
            verdict = f"{label} {'>' if mean_diff > 0 else '<'} {reference}"
        else:
            verdict = f"no significant difference from {reference} (p >= {alpha:g})"
        row.update(mean_diff=mean_diff, t_p=t_p, wilcoxon_p=w_p, wins=wins, verdict=verdict)
        out.append(row)
    return out


def paired_markdown(tests: Sequence[dict[str, Any]], title: str = "") -> str:
    if not tests:
        return ""
    out = io.StringIO()
    if title:
        out.write(title.rstrip() + "\n\n")
    out.write("| Row | vs | recordings | mean Δ | row better on | t-test p | Wilcoxon p | ordering |\n")
    out.write("|---|---|---|---|---|---|---|---|\n")
    for t in tests:
        def num(v, fmt):
            return "n/a" if v is None else format(v, fmt)
        out.write(f"| {t['model']} | {t['reference']} | {t['n']} | {num(t['mean_diff'], '+.3f')} | "
                  f"{num(None if t['wins'] is None else 100 * t['wins'], '.0f')}{'' if t['wins'] is None else '%'} | "
                  f"{num(t['t_p'], '.3g')} | {num(t['wilcoxon_p'], '.3g')} | {t['verdict']} |\n")
    return out.getvalue()
