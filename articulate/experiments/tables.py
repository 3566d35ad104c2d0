"""Aggregate run records into a paper-style table: mean +- std over folds and seeds; paired tests between
rows on per-recording values (:func:`paired_tests`)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _fmt(mean: float | str | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "n/a"
    if isinstance(mean, str):  # a stated value, e.g. "0 (trivial)"
        return mean
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


def per_recording_means(records: Sequence[dict[str, Any]], label: str, key: str) -> dict[str, float]:
    """``recording -> value`` of one row: each recording's value (``record["per_recording"]``) averaged
    over the row's runs (seeds, folds); missing or non-finite values are left out."""
    import math

    values: dict[str, list[float]] = {}
    for r in records:
        if r["spec"]["model"] != label:
            continue
        per = r.get("per_recording") or {}
        for rec, v in zip(per.get("recording", []), per.get(key, [])):
            if v is not None and math.isfinite(float(v)):
                values.setdefault(str(rec), []).append(float(v))
    return {rec: statistics.fmean(v) for rec, v in values.items()}


def paired_tests(records: Sequence[dict[str, Any]], pairs: Sequence[tuple[str, str]],
                 metrics: Sequence[tuple[str, str]], aliases: dict[str, tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Paired tests of row ``a`` against row ``b`` on the recordings both scored: per recording, the
    mean over seeds of each row's value; then the paired t-test (``scipy.stats.ttest_rel``) and the
    Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided) of ``a - b``. ``metrics``: (per-recording
    key, title); ``aliases``: pseudo-rows ``label -> (source row, key suffix)`` (a floor logged beside a
    model as ``<key><suffix>``). p-values are per comparison, not corrected for the number of comparisons."""
    import numpy as np
    from scipy import stats

    aliases = dict(aliases or {})

    def values(label: str, key: str) -> dict[str, float]:
        source, suffix = aliases.get(label, (label, ""))
        return per_recording_means(records, source, key + suffix)

    out = []
    for a, b in pairs:
        for key, title in metrics:
            va, vb = values(a, key), values(b, key)
            common = sorted(set(va) & set(vb))
            x, y = np.array([va[c] for c in common]), np.array([vb[c] for c in common])
            row: dict[str, Any] = {"a": a, "b": b, "metric": title, "key": key, "n": len(common),
                                   "mean_a": float(x.mean()) if len(x) else None,
                                   "mean_b": float(y.mean()) if len(y) else None,
                                   "mean_diff": float((x - y).mean()) if len(x) else None,
                                   "t": None, "p_t": None, "p_wilcoxon": None}
            d = x - y
            # the t-test needs differences that vary (a constant one has no spread to test against)
            if len(common) >= 2 and np.ptp(d) > 1e-12 * max(1.0, float(np.abs(d).max())):
                t = stats.ttest_rel(x, y)
                row["t"], row["p_t"] = float(t.statistic), float(t.pvalue)
            if len(common) >= 1 and np.any(d != 0):
                row["p_wilcoxon"] = float(stats.wilcoxon(x, y).pvalue)
            out.append(row)
    return out


def paired_markdown(rows: Sequence[dict[str, Any]], digits: int = 3) -> str:
    """The paired tests as a markdown table."""
    def num(v: Any, spec: str = f".{digits}f") -> str:
        return "n/a" if v is None else format(v, spec)

    out = io.StringIO()
    out.write("| A | B | measure (per recording) | n | mean A | mean B | mean A − B | t | p (t-test) | p (Wilcoxon) |\n")
    out.write("|" + "---|" * 10 + "\n")
    for r in rows:
        cells = [r["a"], r["b"], r["metric"], str(r["n"]), num(r["mean_a"]), num(r["mean_b"]), num(r["mean_diff"]),
                 num(r["t"], ".2f"), num(r["p_t"], ".2g"), num(r["p_wilcoxon"], ".2g")]
        out.write("| " + " | ".join(cells) + " |\n")
    return out.getvalue()


def write_rows_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["a"])
            writer.writeheader()
            writer.writerows(rows)
