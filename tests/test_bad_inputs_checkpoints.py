"""Bad checkpoints through every loader: `synthesize-audio`, `synthesize-uti`, `fit|test|validate --ckpt_path`
and `articulate.inference.load_predictor`. A checkpoint whose pickle would run code must never run it."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from badinput_helpers import (
    CONFIGS,
    assert_refused,
    edited_checkpoint,
    listing,
    malicious_checkpoint,
    run,
    sequence,
    tone,
    write_wav,
)

from articulate.errors import InputError


@pytest.fixture
def inputs(tmp_path):
    mri = tmp_path / "seq.npy"
    np.save(mri, sequence())
    return {"mri": mri, "audio": write_wav(tmp_path / "speech.wav", tone(0.3, 16000), 16000)}


def _loaders(inputs, out):
    """Every way a user hands us a checkpoint: name -> (command or None for the Python API, argv builder)."""
    return {
        "synthesize-audio": lambda ck: ["synthesize-audio", "--ckpt", ck, "--mri", inputs["mri"], "--out", out / "x.wav"],
        "synthesize-uti": lambda ck: ["synthesize-uti", "--ckpt", ck, "--audio", inputs["audio"], "--out", out / "x.mp4"],
        "fit": lambda ck: ["fit", "--config", CONFIGS / "mri2audio.yaml", "--ckpt_path", ck],
        "test": lambda ck: ["test", "--config", CONFIGS / "mri2audio.yaml", "--ckpt_path", ck],
        "validate": lambda ck: ["validate", "--config", CONFIGS / "mri2audio.yaml", "--ckpt_path", ck],
    }


@pytest.fixture
def nothing_built(monkeypatch, tmp_path, tiny_checkpoints):
    """Records any attempt of LightningCLI to build the model/data/trainer; works in an empty folder."""
    from articulate.training.lightning_cli import ArticulateCLI

    # built (by LightningCLI) before LightningCLI is watched
    assert tiny_checkpoints.mri2audio.is_file() and tiny_checkpoints.wav2uti.is_file()
    calls = []
    monkeypatch.setattr(ArticulateCLI, "instantiate_classes", lambda self: calls.append("built"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return calls, work


LOADERS = ["synthesize-audio", "synthesize-uti", "fit", "test", "validate", "load_predictor"]


def _refused_everywhere(loader, ck, problem, inputs, tmp_path, capfd, nothing_built):
    calls, work = nothing_built
    out = tmp_path / "out"
    if loader == "load_predictor":
        from articulate.inference import load_predictor

        with pytest.raises(InputError, match=re.escape(problem)) as err:
            load_predictor(ck)
        assert str(ck) in str(err.value)
    else:
        assert_refused(run(capfd, *_loaders(inputs, out)[loader](ck)), loader, ck, problem)
    assert calls == [] and listing(work) == set() and listing(out) == set()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "bare-pickle"])
@pytest.mark.parametrize("loader", LOADERS)
def test_a_pickle_that_runs_code_is_never_run(loader, legacy, inputs, tmp_path, capfd, nothing_built):
    marker = tmp_path / "PWNED"
    ck = malicious_checkpoint(tmp_path / "evil.ckpt", marker, legacy=legacy)
    _refused_everywhere(loader, ck, "refused: the file asks to run or rebuild posix.system", inputs, tmp_path, capfd,
                        nothing_built)
    assert not marker.exists()


def _empty(tmp, good):
    (tmp / "empty.ckpt").write_bytes(b"")
    return tmp / "empty.ckpt", "empty file (0 bytes)"


def _corrupt(tmp, good):
    (tmp / "corrupt.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    return tmp / "corrupt.ckpt", "not a readable PyTorch checkpoint"


def _truncated(tmp, good):
    raw = good.read_bytes()
    (tmp / "truncated.ckpt").write_bytes(raw[: len(raw) // 2])
    return tmp / "truncated.ckpt", "zip archive is incomplete or damaged"


def _missing(tmp, good):
    return tmp / "nowhere.ckpt", "checkpoint not found"


def _folder(tmp, good):
    (tmp / "run.ckpt").mkdir()
    return tmp / "run.ckpt", "not a file"


def _a_tensor(tmp, good):
    torch.save(torch.zeros(3), tmp / "tensor.ckpt")
    return tmp / "tensor.ckpt", "not a Lightning checkpoint (no state_dict)"


def _nan_weights(tmp, good):
    def poison(ck):
        key = next(k for k, v in ck["state_dict"].items() if k.startswith("translator.") and v.is_floating_point())
        ck["state_dict"][key] = ck["state_dict"][key] * math.nan

    return edited_checkpoint(good, tmp / "nan.ckpt", poison), "weights hold NaN or infinite values (translator."


def _unregistered_direction(tmp, good):
    return (edited_checkpoint(good, tmp / "eeg.ckpt", lambda ck: ck["articulate"].update(direction="eeg2text")),
            "the direction 'eeg2text', which this installation does not register")


BROKEN = {"missing": _missing, "empty": _empty, "corrupt bytes": _corrupt, "truncated": _truncated, "a folder": _folder,
          "a tensor, not a dict": _a_tensor, "NaN weights": _nan_weights, "unregistered direction": _unregistered_direction}


# Every case through the tools, the Python API and `test`; `fit` / `validate` share `test`'s check (one
# LightningCLI parse is ~1 s), so they get the two cases that reach deepest into the file. synthesize-uti is
# left out where the file is an mri2audio checkpoint: it refuses it by its direction (tested below).
BROKEN_LOADERS = [(case, loader) for case in BROKEN for loader in LOADERS
                  if not (loader in ("fit", "validate") and case not in ("truncated", "NaN weights"))
                  and not (loader == "synthesize-uti" and case in ("NaN weights", "unregistered direction"))]


@pytest.mark.parametrize("case,loader", BROKEN_LOADERS)
def test_broken_checkpoints_are_refused_by_every_loader(case, loader, tiny_checkpoints, inputs, tmp_path, capfd,
                                                        nothing_built):
    ck, problem = BROKEN[case](tmp_path, tiny_checkpoints.mri2audio)
    _refused_everywhere(loader, ck, problem, inputs, tmp_path, capfd, nothing_built)


def test_checkpoints_of_the_other_direction(tiny_checkpoints, inputs, tmp_path, capfd):
    out = tmp_path / "out"
    loaders = _loaders(inputs, out)
    res = run(capfd, *loaders["synthesize-audio"](tiny_checkpoints.wav2uti))
    assert_refused(res, "synthesize-audio", tiny_checkpoints.wav2uti, "a wav2uti checkpoint; this needs a mri2audio one",
                   "use `articulate synthesize-uti`")
    res = run(capfd, *loaders["synthesize-uti"](tiny_checkpoints.mri2audio))
    assert_refused(res, "synthesize-uti", tiny_checkpoints.mri2audio, "a mri2audio checkpoint; this needs a wav2uti one")
    assert listing(out) == set()


@pytest.mark.parametrize("subcommand", ["test", "fit", "validate"])
def test_lightning_cli_refuses_the_other_direction_before_building(subcommand, tiny_checkpoints, capfd, nothing_built):
    calls, work = nothing_built
    res = run(capfd, subcommand, "--config", CONFIGS / "mri2audio.yaml", "--ckpt_path", tiny_checkpoints.wav2uti)
    assert_refused(res, subcommand, tiny_checkpoints.wav2uti, "a wav2uti checkpoint, but the config builds a mri2audio "
                   "model (MRI2AudioTranslator); give the config it was trained with (e.g. configs/wav2uti.yaml)")
    if subcommand == "test":
        res = run(capfd, subcommand, "--config", CONFIGS / "wav2uti.yaml", "--ckpt_path", tiny_checkpoints.mri2audio)
        assert_refused(res, subcommand, tiny_checkpoints.mri2audio, "a mri2audio checkpoint, but the config builds a wav2uti")
    assert calls == [] and listing(work) == set()


def test_lightning_cli_refuses_another_model_of_the_same_direction(tiny_checkpoints, capfd, nothing_built):
    calls, _ = nothing_built
    res = run(capfd, "test", "--config", CONFIGS / "wav2uti.yaml", "--config", CONFIGS / "wav2uti" / "dnn.yaml",
              "--ckpt_path", tiny_checkpoints.wav2uti)
    assert_refused(res, "test", tiny_checkpoints.wav2uti, "a Wav2UTIDiffusion checkpoint, but the config builds Wav2UTIDNN")
    assert calls == []


def _missing_module(ck):
    ck["articulate"].update(module="lightning_modules.retired.OldTranslator",
                            inference="articulate.inference.retired.OldSynthesizer")
    ck["hyper_parameters"]["_class_path"] = "lightning_modules.retired.OldTranslator"


def _missing_network_class(ck):
    ck["articulate"]["init"]["translator"]["class_path"] = "articulate.networks.retired.Translator"


def _no_metadata(ck):
    del ck["articulate"]


def _bare_lightning(ck):
    for key in ("articulate", "hyper_parameters"):
        ck.pop(key, None)


@pytest.mark.parametrize("edit,problem", [
    (_missing_module, "its inference class 'articulate.inference.retired.OldSynthesizer' is not one mri2audio registers"),
    (_missing_network_class, "class articulate.networks.retired.Translator is not available in this installation"),
    (_no_metadata, "checkpoint has no model configuration"),
    (_bare_lightning, "a checkpoint of unknown direction (not written by `articulate fit`)"),
], ids=["module that does not exist", "network class that does not exist", "no articulate metadata", "bare Lightning"])
def test_checkpoints_that_cannot_be_rebuilt(edit, problem, tiny_checkpoints, inputs, tmp_path, capfd):
    ck = edited_checkpoint(tiny_checkpoints.mri2audio, tmp_path / "edited.ckpt", edit)
    out = tmp_path / "out"
    assert_refused(run(capfd, *_loaders(inputs, out)["synthesize-audio"](ck)), "synthesize-audio", ck, problem)
    assert listing(out) == set()


@pytest.mark.parametrize("edit,problem", [
    (_missing_module, "a OldTranslator checkpoint, but the config builds MRI2AudioTranslator"),
    (_bare_lightning, "a checkpoint of unknown direction (not written by `articulate fit`), but the config builds"),
], ids=["module that does not exist", "bare Lightning"])
def test_lightning_cli_refuses_checkpoints_it_cannot_match(edit, problem, tiny_checkpoints, tmp_path, capfd, nothing_built):
    calls, work = nothing_built
    ck = edited_checkpoint(tiny_checkpoints.mri2audio, tmp_path / "edited.ckpt", edit)
    res = run(capfd, "test", "--config", CONFIGS / "mri2audio.yaml", "--ckpt_path", ck)
    assert_refused(res, "test", ck, problem)
    assert calls == [] and listing(work) == set()
