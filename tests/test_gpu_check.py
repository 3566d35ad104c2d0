"""`make gpu-check`'s two checks (articulate.experiments.bench.gpu_check) on a CPU with tiny networks: what they
run and report. The figures themselves need a GPU (the paper configs, 300 bf16 steps, 112-px sampling)."""

from __future__ import annotations

import math

from helpers import make_cohort, stack, wav2uti_tiny_override

from articulate.experiments.bench.core import Variant
from articulate.experiments.bench.gpu_check import cascade_check, train_check


def test_the_gpu_checks_train_in_bf16_and_sample_through_the_cascade(tmp_path):
    cohort = make_cohort(tmp_path / "cohort", speakers=3, utterances=2, seconds=0.5)
    (tmp_path / "b").mkdir()
    (tmp_path / "s").mkdir()
    base = [str(c) for c in [*stack("wav2uti"), wav2uti_tiny_override(cohort, None, tmp_path / "b")]]
    sr = [str(c) for c in [*stack("wav2uti", "res112.yaml"), wav2uti_tiny_override(cohort, "res112.yaml", tmp_path / "s")]]
    fp32 = Variant("fp32")  # bf16 is the GPU's (Lightning's precision plugin); emulated on many CPUs, slow

    row = train_check(base, [], 4, "cpu", fp32)
    assert row["variant"] == "fp32" and row["steps"] == 4 and row["finite"]
    assert row["seconds_per_step"] > 0 and math.isfinite(row["loss_start"]) and math.isfinite(row["loss_end"])
    assert isinstance(row["loss_fell"], bool)

    row = cascade_check(base, sr, "cpu", fp32, seconds=0.3, steps=1)
    assert row["frames"] == 18 and row["resolution"] == [16, 28] and row["finite"]
    assert row["cascade_seconds"] >= row["sr_seconds"] > 0 and row["base_seconds"] > 0
    assert row["steps"] == {"base": 1, "super_resolution": 1}
