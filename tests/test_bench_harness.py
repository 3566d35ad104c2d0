"""The bench harness: registry-driven sections, the GPU variants' plumbing (exercised on the CPU), the
per-config memory probes and their extrapolation, FLOP counting, the step timer and the process settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest
import torch
from torch import nn

from articulate.directions import PROJECT_ROOT, Direction, get_direction, register, unregister
from articulate.experiments import bench
from articulate.experiments.bench import memory, sections
from articulate.experiments.bench.core import BenchContext, StepTimer, Variant, apply_variant, autocast


def test_every_bench_entry_of_the_registry_resolves():
    from articulate.directions import directions, resolve

    names = {d.name: resolve(d.bench) for d in directions() if d.bench}
    assert names["mri2audio"] is bench.mri2audio_sections and names["wav2uti"] is bench.wav2uti_sections


def test_run_benchmarks_loops_over_the_registry(monkeypatch):
    seen = []

    def fake_sections(ctx):
        seen.append(ctx)
        return {"custom": [{"x": 1}]}

    module = types.ModuleType("fake_bench_sections")
    module.fake_sections = fake_sections
    monkeypatch.setitem(sys.modules, "fake_bench_sections", module)
    register(Direction(name="fakedir", summary="x", modalities=(), phantom=None, config="configs/x.yaml", inference={},
                       bench="fake_bench_sections:fake_sections"))
    try:
        out = bench.run_benchmarks(quick=True, device="cpu", directions=("fakedir",), only=("memory",))
    finally:
        unregister("fakedir")
    assert out["fakedir"] == {"custom": [{"x": 1}]} and "mri2audio" not in out
    ctx = seen[0]
    assert ctx.quick and ctx.device == "cpu" and ctx.wants("memory") and not ctx.wants("train")
    assert out["environment"]["load_average_end"] is not None or os.name != "posix"
    rows = dict(bench.summary_rows(out))
    assert rows["fakedir custom"] == "see the JSON"


def test_training_configs_are_the_paper_config_its_variants_and_presets():
    d = get_direction("mri2audio")
    rows = dict(sections.training_configs(d))
    assert rows["paper"] == ["configs/mri2audio.yaml"]
    assert rows["lip2audspec"] == ["configs/mri2audio.yaml", "configs/mri2audio/lip2audspec.yaml"]
    assert {"no_attention", "no_gan", "no_pairwise", "preset quick"} <= set(rows)
    assert not any(k.endswith("_quick") or k == "quick" for k in rows if not k.startswith("preset "))  # overlays, companions
    assert rows["preset quick"] == d.config_stack(preset="quick")
    w = dict(sections.training_configs(get_direction("wav2uti")))
    assert {"res96", "res112", "dnn", "audio_only"} <= set(w) and "dnn_quick" not in w
    for stack in (*rows.values(), *w.values()):
        assert all((PROJECT_ROOT / c).is_file() for c in stack)


def test_configured_batch_size_follows_the_stack():
    assert memory.configured_batch_size(["configs/mri2audio.yaml"]) == 16
    assert memory.configured_batch_size(["configs/mri2audio.yaml", "configs/mri2audio/quick.yaml"]) == 8
    assert memory.configured_batch_size(["configs/wav2uti.yaml"]) == 4
    # paper-size stages that do not fit 8 GB at their batch step on micro-batches (gradient accumulation)
    assert memory.configured_batch_size(["configs/wav2uti.yaml", "configs/wav2uti/res112.yaml"]) == 1
    lip = ["configs/mri2audio.yaml", "configs/mri2audio/lip2audspec.yaml"]
    assert memory.configured_batch_size(lip) == 2
    assert memory.configured_batch_size(["configs/mri2audio.yaml", "configs/mri2audio/quick.yaml", *lip[1:],
                                         "configs/mri2audio/lip2audspec_quick.yaml"]) == 8


def test_paper_size_micro_batches_accumulate_to_the_paper_batch():
    import yaml

    for config, batch, steps in [("configs/wav2uti/res96.yaml", 1, 4), ("configs/wav2uti/res112.yaml", 1, 4),
                                 ("configs/mri2audio/lip2audspec.yaml", 2, 8)]:
        y = yaml.safe_load((PROJECT_ROOT / config).read_text())
        base = yaml.safe_load((PROJECT_ROOT / "configs" / f"{config.split('/')[1]}.yaml").read_text())
        assert y["data"]["init_args"]["batch_size"] == batch
        assert batch * y["trainer"]["accumulate_grad_batches"] == base["data"]["init_args"]["batch_size"]
        assert y["trainer"]["accumulate_grad_batches"] == steps


def test_peak_memory_probes_then_extrapolates_then_measures_within_the_limit(monkeypatch):
    calls = []

    def fake_child(configs, overrides, sizes, device, timeout=None):
        calls.append(list(sizes))  # one batch size per process
        return [{"batch_size": b, "rss_peak_mb": 1000.0 + 500.0 * (b - 1), "rss_before_step_mb": 900.0} for b in sizes]

    monkeypatch.setattr(memory, "run_child", fake_child)
    cfg = ["configs/mri2audio.yaml"]  # batch 16
    quick = memory.peak_memory(cfg, [], "cpu", quick=True, limit_mb=20000)
    assert calls == [[1], [2]] and quick["estimated_rss_peak_mb"] == pytest.approx(1000 + 15 * 500)
    assert not quick.get("measured")
    calls.clear()
    too_big = memory.peak_memory(cfg, [], "cpu", quick=False, limit_mb=4000)
    assert calls == [[1], [2]] and "skipped" in too_big  # never run what would not fit
    calls.clear()
    full = memory.peak_memory(cfg, [], "cpu", quick=False, limit_mb=20000)
    assert calls == [[1], [2], [16]] and full["measured"] and full["rss_peak_mb"] == pytest.approx(8500)
    calls.clear()
    small = memory.peak_memory(["configs/mri2audio.yaml", "configs/mri2audio/quick.yaml"], [], "cpu", quick=True, limit_mb=1e5)
    assert calls == [[1], [2]] and small["estimated_rss_peak_mb"] == pytest.approx(1000 + 7 * 500)
    calls.clear()  # a batch as small as a probe (Lip2AudSpec's 2, accumulated) is measured directly, even in QUICK
    lip = memory.peak_memory(["configs/mri2audio.yaml", "configs/mri2audio/lip2audspec.yaml"], [], "cpu", quick=True,
                             limit_mb=1e5)
    assert calls == [[2]] and lip["measured"] and lip["rss_peak_mb"] == pytest.approx(1500)

    monkeypatch.setattr(memory, "run_child", lambda *a, **k: [{"error": "killed (out of memory?)"}])
    assert memory.peak_memory(cfg, [], "cpu", quick=False, limit_mb=1e5)["error"] == "killed (out of memory?)"


def test_memory_report_lines():
    from articulate.experiments.bench.report import summary_rows

    result = {"environment": {"device": "cpu"}, "wav2uti": {"memory": [
        {"config": "paper", "batch_size": 4, "measured": True, "rss_peak_mb": 5123.4},
        {"config": "res112", "batch_size": 4, "estimated_rss_peak_mb": 20000.0, "probes": [{"batch_size": 1}, {"batch_size": 2}],
         "skipped": "estimated 20000 MB > limit 16384 MB: not run at batch 4"},
        {"config": "paper_encoders", "error": "MissingPretrainedError: wav2vec"}]}}
    rows = dict(summary_rows(result))
    assert rows["wav2uti peak memory paper"] == "5123 MB measured (batch 4)"
    assert rows["wav2uti peak memory res112"].startswith("~20000 MB estimated (batch 4, from batches [1, 2]); estimated")
    assert rows["wav2uti peak memory paper_encoders"] == "MissingPretrainedError: wav2vec"


def test_step_timer_times_compute_and_the_loop_span():
    timer = StepTimer(warmup=1)
    module = types.SimpleNamespace(device=torch.device("cpu"))
    batch = {"x": torch.zeros(3, 2)}
    for i in range(4):
        timer.on_train_batch_start(None, module, batch, i)
        sum(range(20000))
        timer.on_train_batch_end(None, module, None, batch, i)
    assert len(timer.times) == 3 and timer.batch_sizes == [3, 3, 3]
    assert timer.span["batches"] == 3 and timer.span["wall"] >= sum(timer.times) * 0.5
    assert timer.span["user"] >= 0 and timer.span["sys"] >= 0


class _Nets(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ConvTranspose2d(4, 2, 2))
        self.b = nn.Conv3d(2, 4, 3)
        self.frozen = nn.Linear(2, 2).requires_grad_(False)


def test_gpu_variants_plumbing_on_cpu(monkeypatch):
    """The bench's GPU variants (bf16, channels_last, torch.compile) run the same code on any device."""
    names = [v.name for v in bench.variants("cuda")]
    assert names[0] == "fp32" and {"bf16", "bf16+channels_last", "bf16+compile"} <= set(names)
    net = _Nets()
    apply_variant(net, Variant("cl", channels_last=True))
    assert net.a[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net.a[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert net.b.weight.is_contiguous(memory_format=torch.channels_last_3d)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    apply_variant(net, Variant("c", compile=True))
    assert compiled == [net.a, net.b]  # the trainable networks, not the frozen encoder
    with autocast("cpu", Variant("bf16", precision="bf16-mixed")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("cpu", Variant("fp32")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_quick_presets_add_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    """train_quick measures fp32 everywhere, plus bf16 autocast where the CPU has native bf16."""
    for supported, expected in ((True, ["fp32", "bf16"]), (False, ["fp32"])):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda s=supported: s)
        got = sections.quick_variants("cpu")
        assert [v.name for v in got] == expected
        assert [v.precision for v in got] == ["32-true", "bf16-mixed"][: len(expected)]
    assert [v.name for v in sections.quick_variants("cuda")] == ["fp32"]  # the GPU's own variants live in "train"


@pytest.mark.slow
def test_a_gpu_variant_trains_and_infers_on_cpu():
    """training_throughput and the mri2audio inference with the bf16 + channels_last variant (CPU autocast)."""
    from articulate.experiments.bench.inference import mri2audio_inference

    v = Variant("bf16+channels_last", precision="bf16-mixed", channels_last=True)
    configs = ["configs/mri2audio.yaml", "configs/mri2audio/quick.yaml"]
    over = ["--data.init_args.phantom={subjects: 12}", "--data.init_args.crops.train=4", "--data.init_args.batch_size=2"]
    res, _ = bench.training_throughput(configs, over, steps=2, warmup=1, device="cpu", variant=v)
    assert res["variant"] == v.name and res["steps_timed"] == 2 and res["batches_per_second"] > 0
    assert 0.0 <= res["sys_share"] <= 1.0 and res["cpu_seconds_per_batch"] > 0
    inf = mri2audio_inference(configs, "cpu", v, repeats=1)
    assert inf["variant"] == v.name and inf["mel_ms"] > 0 and inf["waveform_ms"] > 0


def test_flops_on_meta_equal_flops_on_cpu_and_per_second_arithmetic():
    from articulate.experiments.flops import count_flops, video_second_flops
    from articulate.networks.wav2uti.unet import VideoUNet

    torch.manual_seed(0)
    net = VideoUNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, resolution=16, attn_resolutions=(8,),
                    cross_attn_resolutions=(8,), cond_dim=8, num_heads=2).eval()
    x, c = torch.randn(1, 1, 4, 16, 16), torch.zeros(1)
    cond, mask = torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool)
    cpu = count_flops(lambda: net(x, c, cond, mask))
    # attention by hand: spatial (4 blocks at 8x8, 16 channels), temporal (3 blocks at 16x16 x 8 ch, 5 at 8x8 x 16 ch),
    # cross (4 blocks, 64 queries x 5 keys x 16 ch); QK^T and AV each 2 * Lq * Lk * C per frame or pixel
    attn = 4 * 4 * 2 * (2 * 64 * 64 * 16) + 3 * 256 * 2 * (2 * 4 * 4 * 8) + 5 * 64 * 2 * (2 * 4 * 4 * 16) \
        + 4 * 4 * 2 * (2 * 64 * 5 * 16)
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:  # the CPU flash kernel: attention uncounted
        net(x, c, cond, mask)
    assert cpu - fc.get_total_flops() == attn
    meta_net = net.to("meta")
    meta = count_flops(lambda: meta_net(x.to("meta"), c.to("meta"), cond.to("meta"), mask.to("meta")))
    assert cpu == meta > 0
    # conv_in alone, by hand: 2 * k*k * C_in * C_out * H * W * frames
    conv = nn.Conv2d(1, 8, 3, padding=1)
    assert count_flops(lambda: conv(torch.zeros(4, 1, 16, 16))) == 2 * 9 * 1 * 8 * 16 * 16 * 4

    per = video_second_flops(10, steps=32, fps=60.0, window=16, hop=8)
    assert per["evaluations_per_window"] == 63 and per["windows_per_second"] == 7.5
    assert per["flops_per_video_second"] == 10 * 63 * 7.5
    assert video_second_flops(10, 32, 60.0, 16, 8, guidance_scale=2.0)["flops_per_window"] == 10 * 63 * 2


def _configure_in_subprocess(env: dict) -> dict:
    code = "import json, os; from articulate.training.runtime import configure; r = configure(); " \
           "print(json.dumps({**r, 'omp': os.environ.get('OMP_WAIT_POLICY')}))"
    full = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "ARTICULATE_MALLOC", "THP_MEM_ALLOC_ENABLE")}
    full.update(env, PYTHONPATH=str(PROJECT_ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_runtime_defaults_yield_to_the_environment():
    default = _configure_in_subprocess({})
    assert default["omp"] == "PASSIVE" and default["env"] == {"OMP_WAIT_POLICY": "PASSIVE", "THP_MEM_ALLOC_ENABLE": "1"}
    assert not default["torch_imported_before"]
    if sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION"):
        assert default["malloc_tuned"] is True
    mine = _configure_in_subprocess({"OMP_WAIT_POLICY": "ACTIVE", "ARTICULATE_MALLOC": "default",
                                     "THP_MEM_ALLOC_ENABLE": "0"})
    assert mine["omp"] == "ACTIVE" and mine["env"] == {} and mine["malloc_tuned"] is False


def test_the_cli_entry_point_applies_the_runtime_settings(monkeypatch):
    from articulate.cli import main as cli_main

    called = []
    monkeypatch.setattr("articulate.training.runtime.configure", lambda: called.append(1) or {})
    assert cli_main.main(["--help"]) == 0 and called == [1]


def test_bench_context_counts():
    q, f = BenchContext.make(True, "cpu"), BenchContext.make(False, "cpu")
    assert (q.train_steps, q.warmup) == (3, 1) and (f.train_steps, f.warmup) == (20, 3)
    assert q.wants("flops") and not BenchContext.make(True, "cpu", ("memory",)).wants("flops")


def test_loaders_pin_memory_only_for_a_cuda_trainer():
    from datamodules.sampling import pin_memory

    def dm(device):
        strategy = types.SimpleNamespace(root_device=torch.device(device))
        return types.SimpleNamespace(trainer=types.SimpleNamespace(strategy=strategy))

    assert pin_memory(dm("cpu")) is False and pin_memory(dm("cuda")) is True
    assert pin_memory(types.SimpleNamespace(trainer=None)) is torch.cuda.is_available()


@pytest.mark.slow
def test_synthesis_memory_runs_the_tool_per_length_and_reports_its_peak(tmp_path):
    """The bench's synthesize-uti rows: a checkpoint of the configs' initial weights, one fresh process per
    speech length, each reporting its own peak RSS and time; the ratio of the longest to the shortest."""
    from helpers import make_cohort, stack, wav2uti_tiny_override

    from articulate.experiments.bench.inference import synthesis_memory

    cohort = make_cohort(tmp_path / "c", speakers=3, utterances=1, seconds=0.3)
    over = wav2uti_tiny_override(cohort, None, tmp_path)
    out = synthesis_memory([str(p) for p in stack("wav2uti", None)] + [str(over)], [0.2, 1.0], 1, "cpu")
    rows = out["rows"]
    assert [r["speech_seconds"] for r in rows] == [0.2, 1.0] and [r["frames"] for r in rows] == [12, 60]
    for r in rows:
        assert r["peak_rss_mb"] > 50 and r["seconds_per_video_second"] > 0 and r["default_steps"] == 2
        assert r["estimated_seconds_per_video_second_at_default_steps"] == pytest.approx(
            r["seconds_per_video_second"] * 3, rel=1e-6)
    assert out["peak_ratio_longest_to_shortest"] == pytest.approx(rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"])
