"""Every config under configs/wav2uti* fits a few steps on CPU (tiny sizes), and a 2-process CPU DDP fit runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import fit_in_process, make_cohort, stack
from helpers import wav2uti_tiny_override as tiny_override

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = sorted(p.name for p in (ROOT / "configs" / "wav2uti").glob("*.yaml"))


def _stack(name: str | None) -> list[Path]:
    """The config files a variant is meant to be layered with (the registry's order)."""
    return stack("wav2uti", name)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("wav2uti-fit-cohort"), speakers=3, utterances=2, seconds=0.5)


@pytest.mark.slow
@pytest.mark.parametrize("name", [None] + [v for v in VARIANTS if v != "paper_encoders.yaml"])
def test_config_fits(name, cohort, tmp_path):
    fit_in_process(_stack(name) + [tiny_override(cohort, name, tmp_path)], ["--trainer.fast_dev_run", "1"])
    # one training step and one validation batch ran (sampling included): its comparison sheet exists
    assert list((tmp_path / "run").rglob("wav2uti_samples/**/step*.png"))


@pytest.mark.slow
def test_paper_encoders_config_fits_with_local_models(cohort, tmp_path):
    from test_encoders import _tiny_bert, _tiny_wav2vec2

    w2v, bert = _tiny_wav2vec2(tmp_path / "w2v"), _tiny_bert(tmp_path / "bert")
    over = tiny_override(cohort, "paper_encoders.yaml", tmp_path, tmp_path / "ckpt")
    extra = ["--model.init_args.audio_encoder.init_args.model", str(w2v),
             "--model.init_args.text_encoder.init_args.model", str(bert),
             "--model.init_args.fusion.init_args.audio_dim", "32", "--model.init_args.fusion.init_args.text_dim", "16"]
    fit_in_process(_stack("paper_encoders.yaml") + [over], extra)
    ck = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any(".model." in k and k.startswith(("audio_encoder", "text_encoder")) for k in ck["state_dict"])
    # frozen outputs were cached once per utterance (audio) and transcript (text)
    folders = sorted(p.name.split("-")[0] for p in (tmp_path / "features").iterdir())
    assert folders == ["BertTextEncoder", "Wav2Vec2Encoder"]


@pytest.mark.ddp
def test_two_process_cpu_ddp_fit(cohort, tmp_path):
    over = tiny_override(cohort, None, tmp_path, tmp_path / "ckpt")
    exe = ROOT / ".venv" / "bin" / "articulate"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "articulate.cli.main"]), "fit",
           "--config", str(ROOT / "configs" / "wav2uti.yaml"), "--config", str(over),
           "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    # one feature-cache folder, filled once (rank 0), read by rank 1
    assert len(list((tmp_path / "features").glob("LogMelEncoder-*/*.npy"))) == 6


@pytest.mark.parametrize("config", ["wav2uti.yaml", "wav2uti/dnn.yaml"])
def test_configured_fvd_scores_clips_shorter_than_16_frames(config):
    """The QUICK preset tests 8-frame clips: the configured FVD must score them (16-frame FVD clips made
    `make train-wav2uti QUICK=1` fail at test time)."""
    from callbacks.metrics import build_metric

    cfg = yaml.safe_load((ROOT / "configs" / config).read_text())
    if "callbacks" not in cfg.get("trainer", {}):  # an overlay that keeps the paper config's callbacks
        cfg = yaml.safe_load((ROOT / "configs" / "wav2uti.yaml").read_text())
    metrics_cb = next(c for c in cfg["trainer"]["callbacks"] if c["class_path"] == "callbacks.metrics.MetricsCallback")
    assert "fvd" in metrics_cb["init_args"]["test_metrics"]
    options = {**metrics_cb["init_args"]["options"]["fvd"], "random_init": True, "input_size": 64}
    fvd = build_metric("fvd", options)
    torch.manual_seed(0)
    for _ in range(2):
        fvd.update(torch.rand(3, 1, 8, 32, 32), torch.rand(3, 1, 8, 32, 32))
    assert torch.isfinite(fvd.compute())


@pytest.mark.slow
@pytest.mark.parametrize("row", [0, 1, 2])
def test_reproduce_quick_rows_train_at_their_real_sizes(row, cohort, tmp_path):
    """Each row of `make reproduce-wav2uti QUICK=1`, with its real (QUICK) network sizes, takes a training
    step and a validation batch: layered configs must agree on widths (the audio-only row once did not)."""
    from articulate.experiments import reproduce as rp
    from articulate.experiments import wav2uti_plan as wp

    plan = wp.wav2uti_plan(True, 1, [64])
    spec = rp.specs(plan)[row]
    data = ["--data.init_args.data_dir", str(cohort), "--data.init_args.phantom", "null", "--data.init_args.num_workers", "0",
            "--data.init_args.split.test_subjects", "1", "--data.init_args.split.val_subjects", "1",
            "--data.init_args.feature_cache_dir", str(tmp_path / "features")]
    trainer = ["--trainer.fast_dev_run", "1", "--trainer.logger", "false", "--trainer.callbacks", "[]",
               "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "run")]
    sampling = ["--model.init_args.evaluation.val_clips", "1"] if spec.model != plan.rows[0].label else []  # not the DNN
    fit_in_process([ROOT / c for c in spec.configs], [*spec.overrides, *data, *trainer, *sampling])
