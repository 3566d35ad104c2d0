"""Result aggregation for the reproduction tables (independent of any model)."""

from __future__ import annotations

import csv
import statistics

from articulate.experiments.runner import RunSpec
from articulate.experiments.tables import aggregate, to_markdown, write_table


def _rec(model, fold, seed, **metrics):
    return {"spec": {"model": model, "fold": fold, "seed": seed}, "metrics": metrics}


def test_std_is_over_seeds_of_fold_means():
    recs = [
        _rec("Ours", 0, 0, corr2d=0.8), _rec("Ours", 1, 0, corr2d=0.6),  # seed 0 mean 0.7
        _rec("Ours", 0, 1, corr2d=0.9), _rec("Ours", 1, 1, corr2d=0.7),  # seed 1 mean 0.8
        _rec("Base", 0, 0, corr2d=0.5, pesq=None),
    ]
    table = aggregate(recs, ["Ours", "Base", "Missing"], ["corr2d", "pesq"])
    ours, base, missing = table
    assert ours["runs"] == 4
    assert abs(ours["corr2d_mean"] - 0.75) < 1e-12
    assert abs(ours["corr2d_std"] - statistics.stdev([0.7, 0.8])) < 1e-12
    assert base["corr2d_mean"] == 0.5 and base["corr2d_std"] == 0.0
    assert base["pesq_mean"] is None and missing["runs"] == 0


def test_markdown_and_csv(tmp_path):
    table = aggregate([_rec("Ours", 0, 0, corr2d=0.81234), _rec("Ours", 0, 1, corr2d=0.81234)], ["Ours"], ["corr2d"])
    md = to_markdown(table, [("corr2d", "Corr2D ↑")], header="# T")
    assert "| Ours | 0.812 ± 0.000 | 2 |" in md and md.startswith("# T")
    write_table(table, [("corr2d", "Corr2D ↑")], tmp_path / "table.md")
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert rows[0]["model"] == "Ours" and abs(float(rows[0]["corr2d_mean"]) - 0.81234) < 1e-9


def test_run_ids_are_unique_per_cell():
    a = RunSpec("mri2audio", "Ours w/o GAN", ["c.yaml"], fold=3, seed=1)
    b = RunSpec("mri2audio", "Ours w/o Attention", ["c.yaml"], fold=3, seed=1)
    assert a.run_id == "ours-w-o-gan_fold3_seed1" and a.run_id != b.run_id
