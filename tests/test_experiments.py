"""Result aggregation for the reproduction tables, the reproduction plans and the benchmark harness."""

from __future__ import annotations

import csv
import json
import statistics

import numpy as np
import pytest

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


def test_bench_summary_reports_errors_and_figures():
    from articulate.experiments.bench import StepTimer, summary_rows, variants

    assert [v.name for v in variants("cpu")] == ["fp32"]
    assert {"bf16", "bf16+compile"} <= {v.name for v in variants("cuda")}
    result = {
        "environment": {},
        "mri2audio": {"train": [{"variant": "fp32", "items_per_second": 4.0}], "data_loading": {"error": "OSError: x"},
                      "inference": [{"variant": "fp32", "mel_ms": 12.0, "waveform_ms": 30.0}], "lip2audspec_inference": []},
        "wav2uti": {"train": [{"error": "RuntimeError: oom"}], "data_loading": None,
                    "sampling": [{"variant": "fp32", "resolution": 112, "steps": 32, "seconds_per_video_second": 5.0}]},
    }
    rows = dict(summary_rows(result))
    assert rows["mri2audio train [fp32]"] == "4.00 seq/s"
    assert rows["mri2audio data loading"] == "OSError: x"
    assert rows["mri2audio translator latency [fp32]"] == "mel 12.0 ms + waveform 30.0 ms"
    assert rows["wav2uti train [?]"] == "RuntimeError: oom"
    assert rows["wav2uti sample 112px 32 steps [fp32]"] == "5.0 s per second of video"
    timer = StepTimer(warmup=1)
    assert timer.times == [] and timer.warmup == 1


def test_bench_train_and_load_collects_variants_then_loader(monkeypatch):
    from articulate.experiments import bench

    calls = []
    monkeypatch.setattr(bench, "training_throughput",
                        lambda c, o, s, w, d, v: (calls.append(v.name) or {"variant": v.name, "items_per_second": 2.0}, f"dm-{v.name}"))
    monkeypatch.setattr(bench, "loader_throughput", lambda dm, n: {"dm": dm, "batches": n})
    section = bench._train_and_load(["c.yaml"], [], 3, 1, "cuda", 7)
    assert calls == [v.name for v in bench.variants("cuda")]
    assert [r["variant"] for r in section["train"]] == calls
    assert section["data_loading"] == {"dm": "dm-fp32", "batches": 7}  # the first fit's DataModule


def test_bench_training_setups_build():
    """The benchmark's configs and data overrides instantiate and their phantom options are valid (a bad
    option once cost a whole `make bench` its wav2uti training row)."""
    from articulate.errors import InputError
    from articulate.experiments import bench

    for configs, overrides in (bench.MRI_BENCH, bench.WAV2UTI_BENCH):
        model, dm = bench.build(configs, overrides)  # DataModules check phantom options when built
        assert model is not None and dm.data_dir is None
    with pytest.raises((InputError, ValueError), match=r"unknown wav2uti phantom option\(s\): speakers"):  # jsonargparse wraps it
        bench.build(bench.WAV2UTI_BENCH[0], ["--data.init_args.phantom={speakers: 8}"])


def test_super_resolution_rows_test_the_cascade_of_their_base_row(tmp_path):
    """96/112-px rows get the same seed's 64-px checkpoint as low_res_ckpt; without it, a clear error."""
    import json

    import pytest

    from articulate.experiments import reproduce as rp
    from articulate.experiments import wav2uti_plan as wp

    plan = wp.wav2uti_plan(False, 2, [64, 96])
    by_label = {r.label: r for r in plan.rows}
    assert by_label["Audio+Text (96 px)"].low_res_from == "Audio+Text (64 px)"
    assert by_label["Audio-only (96 px)"].low_res_from == "Audio-only (64 px)"
    todo = rp.specs(plan)
    order = [s.model for s in todo if s.seed == 0]
    assert order.index("Audio+Text (64 px)") < order.index("Audio+Text (96 px)")  # base first

    sr = next(s for s in todo if s.model == "Audio+Text (96 px)" and s.seed == 1)
    with pytest.raises(RuntimeError, match="base stage"):
        rp.with_base_stage(sr, plan, tmp_path)
    base_id = next(s for s in todo if s.model == "Audio+Text (64 px)" and s.seed == 1).run_id
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"{base_id}.json").write_text(json.dumps({"checkpoint": "logs/x/best.ckpt"}))
    got = rp.with_base_stage(sr, plan, tmp_path)
    assert got.overrides[-1] == "--model.init_args.cascade.low_res_ckpt=logs/x/best.ckpt" and got.run_id == sr.run_id
    base_row = next(s for s in todo if s.model == "Audio+Text (64 px)")
    assert rp.with_base_stage(base_row, plan, tmp_path) is base_row
    # Without the 64-px rows there is no cascade to test: the SR rows use the oracle low-res input.
    assert all(r.low_res_from is None for r in wp.wav2uti_plan(False, 1, [96]).rows)


def test_wav2uti_examples_from_the_dnn_baseline():
    """The reproduction's example frames come from either model kind (the DNN has no sampler)."""
    from types import SimpleNamespace

    import torch

    from articulate.experiments.wav2uti_plan import wav2uti_examples
    from articulate.networks.wav2uti.dnn import FrameDNN
    from articulate.networks.wav2uti.encoders import LogMelEncoder
    from articulate.transforms.clips import ClipGeometry
    from lightning_modules.wav2uti_dnn import Wav2UTIDNN

    torch.manual_seed(0)
    model = Wav2UTIDNN(FrameDNN(in_dim=8, context=1, hidden=16, num_layers=2, out_size=16), LogMelEncoder(n_mels=8),
                       clips=ClipGeometry(resolution=16, frames=4))
    batch = {"video": torch.rand(2, 1, 4, 16, 16) * 2 - 1, "audio": torch.randn(2, 1067) * 0.1, "text": ["a", "b"]}
    cli = SimpleNamespace(model=model, datamodule=SimpleNamespace(test_dataloader=lambda: [batch]))
    got = wav2uti_examples(cli)
    assert got["video_pred"].shape == got["video_target"].shape == (4, 16, 16)


def test_wav2uti_quick_plan_is_the_64px_base_stage_with_step_bounded_rows():
    from articulate.experiments import reproduce as rp
    from articulate.experiments import wav2uti_plan as wp

    plan = wp.wav2uti_plan(True, 2, [64])
    assert [r.label for r in plan.rows] == ["DNN baseline (64 px)", "Audio-only (64 px)", "Audio+Text (64 px)",
                                            "Audio+Text, speech prior (64 px, ours)"]
    # bounded by steps, never by wall-clock time: the same models on any machine
    assert not any("max_time" in o for r in plan.rows for o in r.overrides)
    caps = {r.label: [o for o in r.overrides if o.startswith("--trainer.max_steps=")] for r in plan.rows}
    assert caps["DNN baseline (64 px)"] == [f"--trainer.max_steps={wp.W_QUICK_DNN_STEPS}"]
    assert caps["Audio+Text (64 px)"] == [f"--trainer.max_steps={wp.W_QUICK_STEPS}"]
    assert f"{wp.W_QUICK_STEPS} steps" in plan.header
    # the registry's stack: preset overlays, then each variant with its preset companion
    assert rp.row_configs(plan, plan.rows[-1])[-2:] == ["configs/wav2uti/speech_prior.yaml",
                                                        "configs/wav2uti/speech_prior_quick.yaml"]
    dnn = rp.row_configs(plan, plan.rows[0])
    assert dnn == ["configs/wav2uti.yaml", "configs/wav2uti/quick.yaml", "configs/wav2uti/dnn.yaml", "configs/wav2uti/dnn_quick.yaml"]
    assert all(not r.overrides for r in wp.wav2uti_plan(False, 3, [64, 96]).rows)  # the full plan is uncapped


@pytest.mark.slow
def test_bench_times_the_requested_batches_under_manual_optimisation():
    """mri2audio optimises F, A and D by hand (3 optimizer steps per batch): the benchmark must still time
    ``steps`` batches after ``warmup`` (with max_steps it timed one)."""
    from articulate.experiments import bench

    configs = ["configs/mri2audio.yaml", "configs/mri2audio/quick.yaml"]
    over = ["--data.init_args.phantom={subjects: 12}", "--data.init_args.crops.train=4", "--data.init_args.batch_size=2"]
    res, _ = bench.training_throughput(configs, over, steps=2, warmup=1, device="cpu", variant=bench.variants("cpu")[0])
    assert res["steps_timed"] == 2 and res["batch_size"] == 2 and res["items_per_second"] > 0


def _w_record(model, seed, per, **metrics):
    return {"spec": {"model": model, "fold": 0, "seed": seed}, "metrics": metrics, "per_recording": per}


def test_paired_tests_pair_recordings_averaged_over_seeds_as_scipy():
    from scipy import stats

    from articulate.experiments.tables import paired_tests

    rng = np.random.default_rng(0)
    recs = [f"spk{i}/u{j}" for i in range(2) for j in range(4)]
    records, want = [], {"A": {}, "B": {}}
    for label, shift in (("A", 0.0), ("B", 0.5)):
        for seed in range(3):
            vals = list(rng.normal(10 + shift, 1.0, size=len(recs)))
            order = rng.permutation(len(recs))  # recordings in another order in each run
            per = {"recording": [recs[i] for i in order], "rmse": [vals[i] for i in order],
                   "rmse_ridge": [vals[i] + 3 + 0.1 * i for i in order]}
            if label == "B" and seed == 2:  # a recording one run did not score: averaged over the others
                per["rmse"][0] = None
            records.append(_w_record(label, seed, per))
            for i in range(len(recs)):
                v = per["rmse"][list(order).index(i)]
                if v is not None:
                    want[label].setdefault(recs[i], []).append(v)
    x = np.array([np.mean(want["A"][r]) for r in sorted(recs)])
    y = np.array([np.mean(want["B"][r]) for r in sorted(recs)])
    (row, ridge) = paired_tests(records, [("A", "B"), ("A", "R")], [("rmse", "RMSE")], aliases={"R": ("A", "_ridge")})
    assert row["n"] == 8 and row["mean_diff"] == pytest.approx(float((x - y).mean()))
    t = stats.ttest_rel(x, y)
    assert row["t"] == pytest.approx(t.statistic) and row["p_t"] == pytest.approx(t.pvalue)
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert ridge["mean_diff"] == pytest.approx(-3.35)  # the alias reads rmse_ridge of row A


def test_wav2uti_plan_has_floors_ceiling_contour_and_paired_tests(tmp_path):
    import json

    from articulate.experiments import reproduce as rp
    from articulate.experiments import wav2uti_plan as wp

    plan = wp.wav2uti_plan(True, 3, [64])
    assert plan.seeds == [0, 1, 2]
    keys = [k for k, _ in plan.metrics]
    assert {"test/contour_msd", "test/contour_msd_truth", "test/contour_found_fraction"} <= set(keys)
    assert [e[0] for e in plan.extra_rows] == ["Training-mean frame (floor)", "Ridge probe (floor)",
                                                "Random real clip (floor)", "True video (ceiling)"]
    assert {"test/swap_change", "test/swap_contour_change", "test/detail_ratio"} <= set(keys)
    assert ("Audio+Text (64 px)", "DNN baseline (64 px)") in plan.pairs
    assert ("Audio+Text (64 px)", "Random real clip (floor)") in plan.pairs
    assert ("Audio+Text (64 px)", "Audio-only (64 px)") in plan.pairs
    spec = wp.contour_spec(True)
    assert spec.configs == ["configs/uti2contour.yaml", "configs/uti2contour/quick.yaml", "configs/uti2contour/phantom64.yaml"]
    assert spec.fold is None and spec.run_id == "contour-tracker-phantom-64-px_seed0"
    steps = wp.W_QUICK_CONTOUR_STEPS  # validated once, at the end: the tracker used is the last
    assert spec.overrides == [f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={steps}"]
    # a given checkpoint goes to every row, without training a tracker
    given = wp.wav2uti_plan(True, 3, [64], contour_ckpt="t.ckpt")
    assert given.prepare(tmp_path, "csv") == ["--model.init_args.evaluation.contour_ckpt=t.ckpt"]
    assert wp.wav2uti_plan(True, 3, [64], contour=False).prepare is None

    # the table from records: floors and the ceiling read from the DNN row, trivial cells stated, paired tests
    per = {"recording": ["s/a", "s/b", "s/c"], "rmse": [1.0, 2.0, 3.5], "contour_msd": [1.0, 1.5, 1.2]}
    tracker = {"spec": {"model": spec.model, "fold": None, "seed": 0}, "metrics": {"test/msd_px": 0.8, "test/msd_mm": 1.7,
                                                                                 "test/msd_px_mean_shape": 1.9}}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"{spec.run_id}.json").write_text(json.dumps(tracker))
    for seed in range(3):
        for label, off in (("DNN baseline (64 px)", 0.0), ("Audio-only (64 px)", 0.5), ("Audio+Text (64 px)", 0.7)):
            m = {"test/rmse": 2.0 + off, "test/psnr": 30.0 - off, "test/contour_msd": 1.2 + off,
                 "test/contour_msd_mm": 2.6, "test/rmse_ridge": 3.0, "test/contour_msd_truth_oracle": 0.9,
                 "test/contour_found_fraction_oracle": 1.0, "test/rmse_random_clip": 4.0,
                 "test/swap_change": 0.5 + off, "test/swap_change_real": 4.0, "test/swap_contour_change_real": 1.6}
            p = {**per, "rmse": [v + off * (1 + 0.1 * i) + 0.01 * seed for i, v in enumerate(per["rmse"])],
                 "rmse_ridge": [3.0, 3.1, 3.2], "rmse_random_clip": [4.0, 4.1, 3.9]}
            (tmp_path / "runs" / f"{label}_{seed}.json").write_text(json.dumps(_w_record(label, seed, p, **m)))
    plan.examples = None
    rp.finish(plan, tmp_path)
    md = (tmp_path / "table.md").read_text()
    assert "| Ridge probe (floor) | 3.000 ± 0.000 |" in md
    assert "| Random real clip (floor) | 4.000 ± 0.000 |" in md
    assert "| Audio+Text (64 px) | Random real clip (floor) |" in md  # its paired test (per recording)
    true_row = next(line for line in md.splitlines() if line.startswith("| True video (ceiling)"))
    assert true_row.rstrip(" |").split(" | ")[-4:-1] == ["4.000 ± 0.000", "1.600 ± 0.000", "1 (trivial)"]  # swap, detail
    assert "| True video (ceiling) | 0 (trivial) | ∞ (trivial) |" in md and "0.900 ± 0.000" in md
    assert "## Paired tests per test recording" in md and "'vs truth' (0.900 px)" in md
    assert "RMSE 2.700 vs 2.000 (DNN better" in md
    assert "test/contour_msd_mm_mean" in (tmp_path / "table.csv").read_text()
    assert (tmp_path / "paired_tests.csv").is_file()


def test_a_spec_without_folds_passes_no_fold_argument(tmp_path, monkeypatch):
    from articulate.experiments import runner

    seen = {}

    class Stop(Exception):
        pass

    def fake_cli(args, run):
        seen["args"] = args
        raise Stop

    monkeypatch.setattr("articulate.training.lightning_cli.ArticulateCLI", fake_cli)
    with pytest.raises(Stop):
        runner.run_one(RunSpec("uti2contour", "Tracker", ["c.yaml"], fold=None, seed=2), tmp_path)
    assert not any(a.startswith("--data.init_args.fold") for a in seen["args"]) and "--seed_everything=2" in seen["args"]


def tiny_mri_overlay(tmp_path, nets: dict, train_batches: int):
    """A CPU overlay with the tiny phantom cohort and networks ``nets`` (model init_args), one epoch."""
    from tests.helpers import mri_tiny_overlay

    return mri_tiny_overlay(tmp_path / "tiny.yaml", nets, max_epochs=1, limit_train_batches=train_batches,
                            accelerator="cpu", num_sanity_val_steps=0, logger=False)


def test_mri2audio_reproduction_end_to_end_has_floors_ceiling_and_paired_tests(tmp_path):
    """Two rows x 2 seeds of toy fits through the real runner: every record keeps its per-recording Corr2D
    (model, mean mel, ridge probe), the table carries the floor/probe/oracle rows, the paired tests pair them."""
    from dataclasses import replace

    from articulate.experiments import mri2audio_plan as mp
    from articulate.experiments import reproduce as rp
    from tests.helpers import MRI_TINY_NETS

    tiny = tiny_mri_overlay(tmp_path, MRI_TINY_NETS, train_batches=2)
    plan = mp.mri2audio_plan(False, 2, [0], "loso", None, 4)
    # (the tiny overlay sizes A and D, so the rows that remove them are left out)
    keep = ("Ours", "Ours w/o Pair-wise Disentangle")
    plan = replace(plan, rows=[r for r in plan.rows if r.label in keep], examples=None)
    plan.pairs = [p for p in plan.pairs if p[0] in keep]
    rp.reproduce(plan, tmp_path / "out", extra_args=["--config", str(tiny)])
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "out" / "runs").glob("*.json"))]
    assert len(records) == 4
    for r in records:
        per = r["per_recording"]
        assert per["recording"] and len(per["corr2d"]) == len(per["recording"])
        assert all(-1 <= v <= 1 for v in per["corr2d"])
    ours = next(r for r in records if r["spec"]["model"] == "Ours")
    assert ours["per_recording"]["corr2d_ridge"][0] is not None and ours["details"]["griffin_lim"] == "librosa"
    # PESQ per recording as the test pass scored it: every recording has the same number of crops, so the mean of
    # the per-recording means is the logged mean, for the model (metrics callback) and its floors (the module)
    for r in records:
        for key in ("pesq", "pesq_mean_baseline", "pesq_ridge"):
            values = r["per_recording"][key]
            assert len(values) == len(r["per_recording"]["recording"]) and None not in values
            assert np.mean(values) == pytest.approx(r["metrics"][f"test/{key}"], abs=1e-6)
    table = (tmp_path / "out" / "table.md").read_text()
    for label in ("Per-utterance mean mel (floor)", "Ridge probe (linear, time-aligned)",
                  "Oracle: true mel + Griffin-Lim (ceiling)", "1 (by definition)", "Paired tests"):
        assert label in table
    paired = (tmp_path / "out" / "paired_tests.csv").read_text()
    assert "Ours w/o Pair-wise Disentangle" in paired and "Ridge probe (linear, time-aligned)" in paired
    assert "PESQ-wb (per recording)" in paired and "PESQ-wb (per recording)" in table


@pytest.mark.parametrize("quick", [False, True])
def test_mri2audio_plan_rows_the_other_f_and_as_ceiling_on_the_phantom_only(quick):
    """Table 1's five rows first; then the other F (QUICK: the paper's own F, since its translator rows use the
    frame translator) and, on the phantom only, A's ceiling (the oracle mask, no A); each paired with Ours."""
    from articulate.experiments import mri2audio_plan as mp

    on, off = (mp.mri2audio_plan(quick, 3, [0], "kfold", None, 0, explicit=False, phantom=p) for p in (True, False))
    labels = [r.label for r in on.rows]
    assert labels[:5] == ["Lip2AudSpec", "Ours", "Ours w/o Attention", "Ours w/o Pair-wise Disentangle", "Ours w/o GAN"]
    oracle = next(r for r in on.rows if "A's ceiling" in r.label)
    assert "oracle_mask" in oracle.variants and (oracle.label, "Ours") in on.pairs
    assert all("A's ceiling" not in r.label for r in off.rows) and len(off.rows) == len(on.rows) - 1
    translator_rows = [r for r in on.rows if r.label.startswith("Ours")]
    with_ft = {r.label for r in translator_rows if "frame_translator" in r.variants}
    if quick:
        assert with_ft == set(labels[1:5]) | {oracle.label}  # all but the paper's-F row
    else:
        assert with_ft == {"Ours, F with a time axis (frame translator)"}
    assert ("test/corr2d_warped", "Corr2D on the target's timing (DTW) ↑") in on.metrics


@pytest.mark.parametrize("row", ["ceiling", "lip2audspec"])
def test_mri2audio_rows_without_a_keep_examples_and_per_recording_values(row, tmp_path):
    """A's ceiling row (no A; F reads the phantom's true motion region as its mask) and Lip2AudSpec through the
    real runner with the table's examples and details, which read the evaluation batches' motion regions."""
    from articulate.experiments import mri2audio_plan as mp
    from articulate.experiments import reproduce as rp
    from articulate.experiments import runner
    from tests.helpers import LIP2AUDSPEC_TINY, MRI_TINY_NETS

    label, nets = {"ceiling": (mp.MRI_ORACLE.label, {k: v for k, v in MRI_TINY_NETS.items() if k != "attention"}),
                   "lip2audspec": ("Lip2AudSpec", LIP2AUDSPEC_TINY)}[row]
    tiny = tiny_mri_overlay(tmp_path, nets, train_batches=1)
    plan = mp.mri2audio_plan(False, 1, [0], "loso", None, 4)
    (spec,) = [s for s in rp.specs(plan, ["--config", str(tiny)]) if s.model == label]
    record = runner.run_one(spec, tmp_path / "out", examples=mp.mri2audio_examples, details=mp.mri2audio_details)
    per = record["per_recording"]
    assert per["recording"] and all(-1 <= v <= 1 for v in per["corr2d"])
    examples = np.load(next((tmp_path / "out" / "runs").glob("*.examples.npz")))
    assert examples["mel_pred"].shape == examples["mel_target"].shape
    if row == "ceiling":
        assert record["metrics"]["test/attention_motion_ratio"] > 1
        mask = examples["attention"]  # 0.2 + 0.8 x the region's coverage of each pixel
        assert mask.min() == pytest.approx(0.2) and mask.max() == pytest.approx(1.0)
    else:
        assert "attention" not in examples
