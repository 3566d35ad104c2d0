"""The `articulate` dispatcher: help, unknown commands, LightningCLI wiring, error reporting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from articulate.cli import main as cli_main
from articulate.errors import InputError


def test_help_lists_every_tool(capsys):
    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli_main.tools():
        assert name in out
    assert "fit" in out


def test_unknown_command_exits_2(capsys):
    assert cli_main.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_articulate_error_becomes_message_and_exit_1(monkeypatch, capsys):
    class Fake:
        @staticmethod
        def main(argv):
            raise InputError("/data/x.wav", "file is truncated")

    monkeypatch.setitem(sys.modules, "articulate.cli._fake", Fake)
    monkeypatch.setitem(cli_main.COMMON_TOOLS, "fake", ("articulate.cli._fake", "test"))
    assert cli_main.main(["fake"]) == 1
    err = capsys.readouterr().err
    assert "/data/x.wav: file is truncated" in err
    assert "Traceback" not in err


def test_lightning_cli_help_runs_as_console_script():
    exe = [sys.executable, "-m", "articulate.cli.main"]
    proc = subprocess.run(exe + ["fit", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--trainer" in proc.stdout and "--model" in proc.stdout and "--data" in proc.stdout


@pytest.mark.parametrize("target", ["help"])
def test_make_help_lists_targets(target):
    proc = subprocess.run(["make", "-s", target], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for t in ["test", "train-mri2audio", "train-wav2uti", "phantom", "bench", "reproduce-mri2audio", "reproduce-wav2uti", "install"]:
        assert f"make {t}" in proc.stdout


@pytest.mark.parametrize("val_subjects, monitor", [(0, "train/loss"), (1, "val/corr2d")])
def test_without_validation_data_the_checkpoint_monitors_the_training_loss(tmp_path, capsys, val_subjects, monitor):
    """The DataModule's ``has_validation`` decides; nothing is ever selected on the test split."""
    from helpers import config_args, mri_tiny_overlay, stack

    from articulate.training.lightning_cli import ArticulateCLI

    overlay = mri_tiny_overlay(tmp_path / "tiny.yaml")
    cli = ArticulateCLI(args=[*config_args([*stack("mri2audio"), overlay]), f"--data.init_args.split.val_subjects={val_subjects}",
                              "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.trainer.checkpoint_callback.monitor == monitor
    assert cli.trainer.checkpoint_callback.mode == ("min" if val_subjects == 0 else "max")
    assert ("no validation data" in capsys.readouterr().err) == (val_subjects == 0)
