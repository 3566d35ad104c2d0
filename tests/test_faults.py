"""Faults that must lose nothing: a non-finite loss stops the fit before anything is saved, and a resumed
fit is bit-identical to an uninterrupted one (RNG states and the data position are in the checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    config_args,
    fit_in_process,
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


def _final_state(tmp: Path, configs: list[Path], extra: list[str], name: str, stop_at: int | None = None,
                 resume: Path | None = None) -> dict:
    ckpt = tmp / f"{name}.ckpt"
    more = [f"--trainer.default_root_dir={tmp / name}"]
    if stop_at is not None:
        more += ["--trainer.callbacks+=helpers.SaveAndStopAt", f"--trainer.callbacks.batch={stop_at}",
                 f"--trainer.callbacks.path={ckpt}"]
        fit_in_process(configs, [*extra, *more])
        return {"checkpoint": ckpt}
    if resume is not None:
        more += [f"--ckpt_path={resume}"]
    cli = fit_in_process(configs, [*extra, *more])
    return {k: v.detach().clone() for k, v in cli.model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["mri2audio", "wav2uti"])
def test_resume_mid_epoch_is_bit_identical(direction, cohort, tmp_path):
    """Uninterrupted: 2 epochs of 3 batches. Interrupted after batch 4 (mid-epoch 2), then resumed."""
    if direction == "mri2audio":
        configs = mri_tiny(tmp_path)  # pairs, crops, reparameterisation noise, three optimizers
        extra = ["--data.init_args.crops.train=3", "--trainer.max_epochs=2", "--trainer.limit_val_batches=0"]
    else:
        configs = [*stack("wav2uti"), wav2uti_tiny_override(cohort, None, tmp_path)]  # EDM noise, CFG drop, jitter, EMA
        extra = ["--trainer.max_steps=-1", "--trainer.max_epochs=2", "--trainer.limit_train_batches=3",
                 "--trainer.limit_val_batches=0"]
    straight = _final_state(tmp_path, configs, extra, "straight")
    stopped = _final_state(tmp_path, configs, extra, "stopped", stop_at=4)["checkpoint"]
    resumed = _final_state(tmp_path, configs, extra, "resumed", resume=stopped)
    assert straight.keys() == resumed.keys()
    differ = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert differ == [], f"{len(differ)} of {len(straight)} tensors differ, e.g. {differ[:3]}"
    # and the interruption was real: the stopped checkpoint differs from the end state
    mid = torch.load(stopped, weights_only=True)["state_dict"]
    assert any(not torch.equal(mid[k], straight[k]) for k in mid if k in straight)
