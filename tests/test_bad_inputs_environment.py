"""Configs and caches from anywhere: the packaged configs are found from any folder, the cache folder is checked
before use, YAML is parsed with its alias expansion bounded, and every number of a config is finite (enumerated
over every float of every direction's config). Long jobs report progress in a log file."""

from __future__ import annotations

import re

import pytest
from badinput_helpers import CONFIGS, ROOT, assert_ok, assert_refused, listing, run

from articulate.directions import directions

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]" for i in range(1, 10)]
                 + ["trainer: {max_epochs: 1}", "model: {init_args: {x: *j}}"]) + "\n"


# --------------------------------------------------------------------------------------------- configs


def test_pyproject_ships_every_config_folder():
    """A wheel installs configs/ under share/articulate/configs (articulate.paths.configs_dir): every folder of
    configs/ must be listed in pyproject's data-files, or `articulate train` misses its overlays when installed."""
    text = (ROOT / "pyproject.toml").read_text()  # (tomllib is Python 3.11+)
    section = text.split("[tool.setuptools.data-files]", 1)[1].split("\n[", 1)[0]
    shipped = set(re.findall(r'"(configs[^"]*)"', section))
    folders = {p.parent.relative_to(ROOT).as_posix() for p in CONFIGS.rglob("*.yaml")}
    assert {f"{folder}/*.yaml" for folder in folders} <= shipped


@pytest.mark.parametrize("direction", [d.name for d in directions()])
def test_train_finds_the_packaged_configs_from_any_folder(direction, tmp_path, monkeypatch):
    """`articulate train <direction>` from a folder without configs/: the stack resolves to the project's files and
    LightningCLI builds the model and the data module from them."""
    from articulate.cli.train import fit_args
    from articulate.training.lightning_cli import ArticulateCLI

    monkeypatch.chdir(tmp_path)
    args = fit_args(direction, "quick")
    files = args[1::2]
    assert all(f.startswith(str(CONFIGS)) for f in files), files
    cli = ArticulateCLI(args=[*args, "--trainer.logger=false", "--trainer.callbacks=[]"], run=False)
    assert cli.model is not None and cli.datamodule is not None


def test_fit_resolves_a_project_config_named_relative_to_the_project(tmp_path, monkeypatch, capfd):
    """`articulate fit --config configs/x.yaml` run elsewhere: the project's file, not 'config file not found'."""
    monkeypatch.chdir(tmp_path)
    res = run(capfd, "fit", "--config", "configs/mri2audio.yaml", "--trainer.logger", "false",
              "--data.init_args.batch_size", "0")
    assert_refused(res, "fit", "batch_size must be at least 1, got 0")  # got as far as building the data module
    res = run(capfd, "fit", "--config", "configs/no_such.yaml")
    assert_refused(res, "fit", "configs/no_such.yaml", "config file not found")


def test_a_billion_laughs_config_is_refused_in_one_line(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bomb.yaml").write_text(BOMB)
    res = run(capfd, "fit", "--config", tmp_path / "bomb.yaml")
    assert_refused(res, "fit", tmp_path / "bomb.yaml", "YAML aliases expand to more than")


def test_a_billion_laughs_inline_value_is_refused(tmp_path, capfd, monkeypatch):
    """Inline YAML values go through jsonargparse's loader, bounded the same way."""
    monkeypatch.chdir(tmp_path)
    value = "{" + BOMB.replace("\n", ", ").replace("trainer: {max_epochs: 1}, model: {init_args: {x: *j}}, ", "")
    value = value.rstrip(", ") + "}"
    res = run(capfd, "fit", "--config", CONFIGS / "mri2audio.yaml", "--trainer.logger", "false",
              "--model.init_args.translator", value)
    assert_refused(res, "fit", "YAML aliases expand to more than")


def test_safe_yaml_counts_expansion_not_text():
    from articulate.errors import InputError
    from articulate.utils.safe_yaml import check_yaml, load_yaml

    assert load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}  # ordinary aliases are fine
    with pytest.raises(InputError, match="expand to more than 1,000 nodes"):
        check_yaml("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n", max_nodes=1000)
    with pytest.raises(InputError, match="nested too deeply|expand"):
        check_yaml("x: " + "[" * 1500 + "]" * 1500 + "\ny: *z\n")


@pytest.mark.parametrize("direction", directions(), ids=lambda d: d.name)
def test_every_float_of_every_config_must_be_finite(direction):
    """Enumerated: each float of the parsed config set to NaN and to infinity is refused, naming its key."""
    from jsonargparse import Namespace

    from articulate.cli.train import fit_args
    from articulate.errors import InputError
    from articulate.training.lightning_cli import ArticulateCLI, check_config_numbers

    cli = ArticulateCLI(args=[*fit_args(direction.name, "quick"), "--trainer.logger=false"], run=False)
    section = cli.config
    keys = [k for k, v in section.items(branches=False) if isinstance(v, float)]
    assert keys, "no float in the config: the enumeration found nothing"
    check_config_numbers(section)  # the shipped config itself passes
    for key in keys:
        for bad in (float("nan"), float("inf")):
            poisoned = section.clone() if isinstance(section, Namespace) else section
            poisoned[key] = bad
            with pytest.raises(InputError, match=re.escape(f"--{key} must be a finite number")):
                check_config_numbers(poisoned)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan", "inf"])
def test_a_non_finite_config_value_is_refused_before_building(value, tmp_path, capfd, monkeypatch):
    """In a YAML file (jsonargparse takes .nan/.inf for floats: the config check refuses them) and on the command
    line (jsonargparse itself refuses the text nan/inf for a float)."""
    monkeypatch.chdir(tmp_path)
    if value.startswith((".", "-.")):
        (tmp_path / "x.yaml").write_text(f"model:\n  init_args:\n    lambdas: {{loss_rec: 1.0, loss_kl: {value}, loss_adv: 0.5}}\n")
        res = run(capfd, "fit", "--config", CONFIGS / "mri2audio.yaml", "--config", tmp_path / "x.yaml",
                  "--trainer.logger", "false")
        assert_refused(res, "fit", "--model.init_args.lambdas.loss_kl must be a finite number")
    else:
        res = run(capfd, "fit", "--config", CONFIGS / "mri2audio.yaml", "--trainer.logger", "false",
                  f"--model.init_args.lambdas.loss_kl={value}")
        assert_refused(res, "fit", "model / lambdas", f"Got value: {value}")
    assert listing(tmp_path) <= {"x.yaml"}


def test_a_cuda_accelerator_without_a_gpu(tmp_path, capfd, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    res = run(capfd, "fit", "--config", CONFIGS / "mri2audio.yaml", "--trainer.logger", "false",
              "--trainer.accelerator", "gpu")
    assert_refused(res, "fit", "no CUDA device: use --trainer.accelerator cpu")


# --------------------------------------------------------------------------------------------- caches


@pytest.mark.parametrize("where", ["a file", "under a file", "under /proc"])
def test_the_cache_folder_is_checked_before_use(where, tmp_path, capfd, monkeypatch):
    (tmp_path / "afile").write_text("x")
    cache, problem = {"a file": (tmp_path / "afile", "is a file"),
                      "under a file": (tmp_path / "afile" / "cache", "is a file"),
                      "under /proc": ("/proc/articulate-cache", "cannot create this cache folder")}[where]
    monkeypatch.setenv("ARTICULATE_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    from articulate.errors import InputError
    from articulate.paths import cache_dir

    with pytest.raises(InputError, match=problem):
        cache_dir()
    # a fit on the phantom (its cohort is cached): one line naming the variable, before training
    res = run(capfd, "fit", "--config", CONFIGS / "uti2contour.yaml", "--config", CONFIGS / "uti2contour" / "quick.yaml",
              "--trainer.logger", "false", "--trainer.fast_dev_run", "1")
    assert_refused(res, "fit", "ARTICULATE_CACHE", problem)


# --------------------------------------------------------------------------------------------- progress


def test_progress_lines_in_a_file(capsys):
    from articulate.utils.progress import Progress

    with Progress("job", total=4, unit="subject", every_s=0) as p:
        for _ in range(4):
            p.update(loss=0.5)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("job: 1/4 subjects, loss 0.5, ") and "elapsed" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("job: 4/4 subjects")


def test_phantom_generation_reports_progress_in_a_log(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("ARTICULATE_PROGRESS_S", "0")
    res = run(capfd, "phantom", "wav2uti", "--out", tmp_path / "c", "--subjects", "2", "--vowels", "1", "--words", "0",
              "--sentences", "0", "--workers", "1")
    assert_ok(res)
    assert re.search(r"^phantom wav2uti: 1/2 subjects, \S+ elapsed, ~\S+ left$", res.err, re.MULTILINE), res.err


def test_sampling_reports_progress_in_a_log(tiny_checkpoints, tmp_path, capfd, monkeypatch):
    from badinput_helpers import tone, write_wav

    monkeypatch.setenv("ARTICULATE_PROGRESS_S", "0")
    wav = write_wav(tmp_path / "s.wav", tone(0.3, 16000), 16000)
    res = run(capfd, "synthesize-uti", "--ckpt", tiny_checkpoints.wav2uti, "--audio", wav, "--out", tmp_path / "y.mp4",
              "--steps", "3", "--device", "cpu")
    assert_ok(res)
    assert re.search(r"^articulate synthesize-uti: sampling: 2/3 steps, \S+ elapsed, ~\S+ left$", res.err, re.MULTILINE), res.err


def test_training_reports_progress_in_a_log(tmp_path, capfd, monkeypatch):
    """ArticulateCLI adds the progress callback to every fit: plain lines (step, loss, time left) in a file."""
    from test_bad_inputs_configs import _wav2uti_fit_args

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARTICULATE_PROGRESS_S", "0")
    res = run(capfd, *_wav2uti_fit_args(tmp_path, "dnn.yaml", keep_logger=False), "--trainer.fast_dev_run", "false",
              "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0")
    assert_ok(res)
    assert re.search(r"^articulate fit: 1/3 steps, epoch 0, loss [-\d.e]+, \S+ elapsed, ~\S+ left$", res.err,
                     re.MULTILINE), res.err
