"""Faults that must lose nothing: a non-finite loss stops the fit before anything is saved. (A resumed fit being
bit-identical to an uninterrupted one, from any checkpoint and for every direction: tests/test_resume.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    config_args,
    make_cohort,
    mri_tiny_overlay,
    quiet_trainer,
    stack,
    wav2uti_tiny_override,
)

from articulate.cli.main import main as articulate


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("faults-cohort"), speakers=3, utterances=2, seconds=0.5)


def mri_tiny(tmp: Path, **trainer) -> list[Path]:
    return [*stack("mri2audio"), mri_tiny_overlay(tmp / "tiny.yaml", **quiet_trainer(tmp, **trainer))]


def every_step_checkpoints(tmp: Path) -> list[str]:
    return ["--trainer.enable_checkpointing=true", "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={tmp / 'ckpt'}", "--trainer.callbacks.every_n_train_steps=1",
            "--trainer.callbacks.save_top_k=-1"]


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["mri2audio", "wav2uti"])
def test_a_nan_loss_stops_the_fit_with_one_line_and_saves_nothing_of_it(direction, cohort, tmp_path, capsys):
    configs = mri_tiny(tmp_path) if direction == "mri2audio" else [*stack("wav2uti"), wav2uti_tiny_override(cohort, None, tmp_path)]
    args = ["fit", *config_args(configs), "--trainer.max_steps=20", "--trainer.limit_val_batches=0",
            *every_step_checkpoints(tmp_path), "--trainer.callbacks+=helpers.PoisonAt", "--trainer.callbacks.batch=1"]
    assert articulate(args) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and "is nan" in lines[0] and "step" in lines[0] and "Traceback" not in err
    # the first batch's checkpoint exists and is finite; nothing was written from the poisoned batch on
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert len(saved) == 1
    state = torch.load(saved[0], weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
