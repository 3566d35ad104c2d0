"""Bad configs and options for `articulate fit` (LightningCLI) and `articulate phantom`: one line each,
never the parser's usage and Union dump; and the settings that must simply work (no logger, W&B off)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from badinput_helpers import CONFIGS, ROOT, assert_ok, assert_refused, listing, run, wav2uti_stack, wav2uti_tiny

MRI2AUDIO = ["fit", "--config", CONFIGS / "mri2audio.yaml", "--trainer.logger", "false"]
WAV2UTI = ["fit", "--config", CONFIGS / "wav2uti.yaml", "--trainer.logger", "false"]


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _no_dump(res):
    assert "usage:" not in res.err and "Does not validate against any of the Union subtypes" not in res.err
    assert len(res.err.strip().splitlines()) <= 3, res.err  # the error line (+ at most "Seed set to 0"-style info)


CONSTRUCTOR = {
    "negative MRI size": (MRI2AUDIO + ["--data.init_args.size", "-4"], "size must be at least 1, got -4"),
    "zero batch size": (MRI2AUDIO + ["--data.init_args.batch_size", "0"], "batch_size must be at least 1, got 0"),
    "negative fan resolution": (WAV2UTI + ["--data.init_args.clips.resolution", "-8"],
                                "clips.resolution must be at least 2, got -8"),
    "negative fps": (WAV2UTI + ["--data.init_args.clips.fps", "-60"], "clips.fps must be positive, got -60"),
    "unknown view": (WAV2UTI + ["--data.init_args.view", "sideways"],
                     "the configuration could not be built: ValueError: view must be 'fan' or 'scanlines', got 'sideways'"),
}


@pytest.mark.parametrize("case", list(CONSTRUCTOR))
def test_a_bad_value_raised_in_a_constructor_is_its_own_line(case, work, capfd):
    argv, problem = CONSTRUCTOR[case]
    res = run(capfd, *argv)
    assert_refused(res, "fit", problem)
    _no_dump(res)
    assert listing(work) <= {"logs"} and listing(work / "logs") == set()  # no run was started


def test_parse_errors_are_one_line(work, capfd):
    (work / "broken.yaml").write_text("trainer:\n  max_epochs: [1, 2\nmodel: {}\n")
    (work / "list.yaml").write_text("- trainer\n- model\n")
    cases = [
        (MRI2AUDIO + ["--model.init_args.lambdas.loss_kl", "abc"], "model / lambdas:",
         "Expected a <class 'float'>. Got value: abc"),
        (MRI2AUDIO + ["--trainer.max_epochs", "many"], "trainer.max_epochs: Expected a <class 'int'>", "many"),
        (MRI2AUDIO + ["--trainer.no_such_option", "3"], "unrecognized arguments: --trainer.no_such_option 3"),
        (MRI2AUDIO + ["--model.class_path", "lightning_modules.retired.Model"], "lightning_modules.retired.Model"),
        (["fit", "--config", work / "missing.yaml"], work / "missing.yaml", "config file not found"),
        (["fit", "--config", CONFIGS / "mri2audio.yaml", "--config", work / "broken.yaml"], work / "broken.yaml",
         "not valid YAML (line 3, column 6: expected ',' or ']'"),
        (["fit", "--config", work / "list.yaml"], work / "list.yaml", "this file a list"),
    ]
    for argv, *needles in cases:
        res = run(capfd, *argv)
        assert_refused(res, "fit", *needles)
        _no_dump(res)
    assert listing(work) == {"broken.yaml", "list.yaml"}


def test_train_an_unknown_direction_is_one_line_with_or_without_a_preset(capfd):
    for argv in (["train", "nosuch"], ["train", "nosuch", "--quick"], ["train", "nosuch", "--preset", "realdata_quick"]):
        assert_refused(run(capfd, *argv), "train", "unknown direction 'nosuch'", "wav2uti")


def test_paper_encoders_offline_without_the_model(tmp_path):
    """Offline with an empty Hugging Face cache: one line naming wav2vec 2.0 and how to download it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), WANDB_MODE="disabled",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "articulate.cli.main", "fit", "--config", str(CONFIGS / "wav2uti.yaml"),
           "--config", str(CONFIGS / "wav2uti" / "paper_encoders.yaml"), "--trainer.default_root_dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("articulate fit: error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "wav2vec 2.0 model 'facebook/wav2vec2-large-xlsr-53' is not available" in lines[0]
    assert "huggingface-cli download facebook/wav2vec2-large-xlsr-53" in lines[0]
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("wandb"))


@pytest.mark.parametrize("option,value,problem", [
    ("--fps", "-5", "--fps must be above 0, got -5"),
    ("--sr", "0", "--sr must be at least 8000, got 0"),
    ("--subjects", "0", "--subjects must be at least 1, got 0"),
])
def test_phantom_options_out_of_range(option, value, problem, tmp_path, capfd):
    res = run(capfd, "phantom", "wav2uti", "--out", tmp_path / "cohort", option, value, "--quiet", "--workers", "1")
    assert_refused(res, "phantom", problem)
    assert not (tmp_path / "cohort").exists()


def test_phantom_mri_with_one_frame_is_refused(tmp_path, capfd):
    """A 1-frame cohort would be written and then refused by every reader."""
    res = run(capfd, "phantom", "mri2audio", "--out", tmp_path / "cohort", "--subjects", "1", "--frames", "1", "--quiet")
    assert_refused(res, "phantom", "--frames must be at least 2, got 1")
    assert not (tmp_path / "cohort").exists()


# ------------------------------------------------------------------------- settings that must just work


def _wav2uti_fit_args(tmp, variant, keep_logger: bool):
    """A tiny fit of a wav2uti config stack; the config's own W&B logger is kept unless told otherwise."""
    from test_wav2uti_data import make_cohort

    cohort = tmp / "cohort"
    if not cohort.exists():
        make_cohort(cohort, speakers=3, utterances=1, seconds=0.3)
    tiny = wav2uti_tiny(tmp, cohort, variant)
    cfg = yaml.safe_load(tiny.read_text())
    if keep_logger:
        cfg["trainer"].pop("logger")
    tiny.write_text(yaml.safe_dump(cfg))
    configs = wav2uti_stack(variant) + [tiny]
    return ["fit", *[a for c in configs for a in ("--config", c)], "--trainer.fast_dev_run", "1"]


def test_wandb_disabled_writes_no_wandb_folder(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    res = run(capfd, *_wav2uti_fit_args(tmp_path, "dnn.yaml", keep_logger=True),
              "--trainer.fast_dev_run", "false", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0",
              "--trainer.log_every_n_steps", "1")
    assert_ok(res)
    assert not [p for p in tmp_path.rglob("*") if "wandb" in p.name.lower()]
    assert list((tmp_path / "run").rglob("metrics.csv"))  # the metrics went to the CSV log under default_root_dir


WAV2UTI_VARIANTS = [None] + sorted(p.name for p in (CONFIGS / "wav2uti").glob("*.yaml") if p.name != "paper_encoders.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("variant", WAV2UTI_VARIANTS)
def test_logger_false_fits_one_step_with_every_wav2uti_config(variant, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(capfd, *_wav2uti_fit_args(tmp_path, variant, keep_logger=True), "--trainer.logger", "false")
    assert_ok(res)
    assert "1 optimizer steps" in res.err
    assert not [p for p in tmp_path.rglob("*") if p.name in ("wandb", "lightning_logs")]
