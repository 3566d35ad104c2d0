"""End to end through `articulate fit`: every configs/mri2audio* config, a 2-process CPU DDP fit
(three optimizers, no unused-parameter failure), and resuming from ``last.ckpt``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import MRI_TINY_DATA, stack, write_yaml
from helpers import config_args as hconfig_args

from articulate.cli.main import main as articulate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [None, *sorted(p.name for p in (ROOT / "configs" / "mri2audio").glob("*.yaml"))]


def config_args(tmp: Path, variant: str | None) -> list[str]:
    """The variant's registry stack, then tiny data (and a tiny Lip2AudSpec) on top."""
    # Lip2AudSpec at its real widths: every 7th 5-frame slice keeps the CPU fit short
    model = {"init_args": {"network": {"init_args": {"window_stride": 7}}}} if variant and variant.startswith("lip2audspec") else {}
    tiny = write_yaml(tmp / "tiny.yaml", {"trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                                                      "enable_model_summary": False},
                                          "data": {"init_args": MRI_TINY_DATA}, **({"model": model} if model else {})})
    return [*hconfig_args(stack("mri2audio", variant)), "--config", str(tiny)]


@pytest.mark.slow
@pytest.mark.parametrize("variant", CONFIGS)
def test_every_config_fits_a_step(variant, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", *config_args(tmp_path, variant), "--trainer.fast_dev_run", "1"]
    assert articulate(args) == 0


def last_checkpoint(root: Path) -> Path:
    found = sorted(root.rglob("last.ckpt"))
    assert found, f"no last.ckpt under {root}"
    return found[0]


@pytest.mark.slow
def test_fit_then_resume_from_last(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["fit", *config_args(tmp_path, "no_gan.yaml"), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0"]
    assert articulate([*base, "--trainer.max_epochs", "1"]) == 0
    first = torch.load(last_checkpoint(tmp_path), map_location="cpu", weights_only=False)
    assert first["epoch"] == 0 and first["global_step"] == 4  # 2 batches x (F + A optimizer steps)
    meta = first["articulate"]
    assert meta["direction"] == "mri2audio" and meta["input_shape"] == [26, 32, 32] and meta["sample_rate"] == 22050
    assert meta["mean_mel"].shape[1:] == (1, 64, 64)

    # Resumed with 1 batch per epoch: only epoch 1 is left, so 4 + 2 optimizer steps (a restart
    # would run 2 epochs of 1 batch: 4).
    assert articulate([*base, "--trainer.max_epochs", "2", "--ckpt_path", "last", "--trainer.limit_train_batches", "1"]) == 0
    second = torch.load(last_checkpoint(tmp_path), map_location="cpu", weights_only=False)
    assert second["global_step"] == 6
    changed = [k for k in first["state_dict"] if not torch.equal(first["state_dict"][k], second["state_dict"][k])]
    assert any(k.startswith("translator.") for k in changed) and any(k.startswith("attention.") for k in changed)


@pytest.mark.slow
def test_fit_then_test_on_held_out_split(tmp_path, monkeypatch, capsys, caplog):
    """`--test_after_fit true` (the make train targets) ends fit with test from the best checkpoint."""
    monkeypatch.chdir(tmp_path)
    args = ["fit", *config_args(tmp_path, "no_gan.yaml"), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
            "--trainer.num_sanity_val_steps", "0", "--test_after_fit", "true"]
    with caplog.at_level("INFO"):
        assert articulate(args) == 0
    out = capsys.readouterr().out
    assert "test/corr2d" in out and "test/corr2d_mean_baseline" in out
    assert "test/corr2d_warped " in out and "test/corr2d_warped_mean_baseline" in out  # the config's test metric, the floor's
    assert "test/attention_motion_ratio" in out and "test/attention_motion_modulation" in out  # A on the phantom
    restored = [r.getMessage() for r in caplog.records if "Restoring states from the checkpoint path" in r.getMessage()]
    assert restored and restored[-1].endswith("mri2audio-epoch=000.ckpt")  # the monitored best, not last.ckpt


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_cpu_ddp_fit(tmp_path):
    """Plain `--trainer.strategy ddp` (find_unused_parameters=False) with F, A and D optimizers."""
    args = [sys.executable, "-m", "articulate.cli.main", "fit", *config_args(tmp_path, None),
            "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.num_sanity_val_steps", "0", "--trainer.default_root_dir", str(tmp_path),
            "--data.init_args.phantom", "{subjects: 5}", "--data.init_args.split.val_subjects", "2",
            "--data.init_args.crops.train", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "unused parameters" not in proc.stderr.lower()
    ckpt = torch.load(last_checkpoint(tmp_path), map_location="cpu", weights_only=False)
    # 2 training subjects x 4 crops over 2 ranks = 2 batches of 2 per rank (the second iteration is
    # where an unfinished DDP reduction would fail), each stepping D, F and A.
    assert ckpt["global_step"] == 6
