"""Output places that cannot be written: a file in the way of the folder, a path under /proc, a folder
where a file is expected, a --trainer.default_root_dir that cannot be created. Each is refused with one
line naming the place, before the work is done, and leaves no file behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from badinput_helpers import CONFIGS, assert_ok, assert_refused, listing, run, sequence, tone, write_wav

PROC = Path("/proc/articulate-no-such-folder")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "seq.npy", sequence())
    write_wav(tmp_path / "in" / "speech.wav", tone(0.3, 16000), 16000)
    (tmp_path / "a_file").write_text("in the way")
    (tmp_path / "a_folder.mp4").mkdir()
    return tmp_path


def _targets(tmp, suffix):
    """(output, the place the message names, the problem) for each unwritable output."""
    return {
        "file in the way": (tmp / "a_file" / f"x{suffix}", tmp / "a_file", f"cannot create this folder: {tmp / 'a_file'} is a file"),
        "under /proc": (PROC / f"x{suffix}", PROC, "cannot create this folder"),
    }


@pytest.mark.parametrize("where", ["file in the way", "under /proc"])
def test_synthesize_audio_output_that_cannot_be_written(where, files, tiny_checkpoints, capfd):
    out, named, problem = _targets(files, ".wav")[where]
    before = listing(files)
    res = run(capfd, "synthesize-audio", "--ckpt", tiny_checkpoints.mri2audio, "--mri", files / "in" / "seq.npy", "--out", out)
    assert_refused(res, "synthesize-audio", named, problem)
    assert listing(files) == before


@pytest.mark.parametrize("where", ["file in the way", "under /proc", "existing folder"])
def test_synthesize_uti_output_that_cannot_be_written(where, files, tiny_checkpoints, capfd):
    if where == "existing folder":
        out, named, problem = files / "a_folder.mp4", files / "a_folder.mp4", "is a folder; give a file name to write"
    else:
        out, named, problem = _targets(files, ".mp4")[where]
    before = listing(files)
    res = run(capfd, "synthesize-uti", "--ckpt", tiny_checkpoints.wav2uti_dnn, "--audio", files / "in" / "speech.wav",
              "--out", out)
    assert_refused(res, "synthesize-uti", named, problem)
    assert listing(files) == before


def test_output_is_checked_before_the_checkpoint_is_read(files, capfd):
    """A sampler run takes minutes: the output place is refused first (here the checkpoint does not even exist)."""
    res = run(capfd, "synthesize-uti", "--ckpt", files / "none.ckpt", "--audio", files / "in" / "speech.wav",
              "--out", files / "a_file" / "x.mp4")
    assert_refused(res, "synthesize-uti", files / "a_file", "is a file")
    res = run(capfd, "synthesize-audio", "--ckpt", files / "none.ckpt", "--mri", files / "in" / "seq.npy",
              "--out", files / "a_file" / "x.wav")
    assert_refused(res, "synthesize-audio", files / "a_file", "is a file")


def test_synthesize_audio_into_an_existing_folder_is_valid(files, tiny_checkpoints, capfd):
    (files / "out").mkdir()
    res = run(capfd, "synthesize-audio", "--ckpt", tiny_checkpoints.mri2audio, "--mri", files / "in" / "seq.npy",
              "--out", files / "out", "--n-iter", "1", "--no-png")
    assert_ok(res)
    assert listing(files / "out") == {"seq.wav"}


@pytest.mark.parametrize("where", ["file itself", "file in the way", "under /proc"])
def test_phantom_output_folder_that_cannot_be_made(where, files, capfd):
    out, named, problem = {
        "file itself": (files / "a_file", files / "a_file", f"cannot create this folder: {files / 'a_file'} is a file"),
        "file in the way": (files / "a_file" / "cohort", files / "a_file" / "cohort", "is a file"),
        "under /proc": (PROC / "cohort", PROC / "cohort", "cannot create this folder"),
    }[where]
    before = listing(files)
    res = run(capfd, "phantom", "wav2uti", "--out", out, "--subjects", "1", "--quiet", "--workers", "1")
    assert_refused(res, "phantom", named, problem)
    assert listing(files) == before


def test_phantom_smallest_cohort_then_preview_into_a_folder(files, capfd):
    """One speaker with one vowel prompt is a valid (tiny) cohort; its preview cannot be written onto a folder."""
    cohort = files / "cohort"
    res = run(capfd, "phantom", "wav2uti", "--out", cohort, "--subjects", "1", "--vowels", "1", "--words", "0",
              "--sentences", "0", "--quiet", "--workers", "1")
    assert_ok(res)
    assert "wrote 1 wav2uti recordings" in res.out and (cohort / "manifest.csv").is_file()
    before = listing(files)
    res = run(capfd, "phantom", "preview", cohort, "--out", files / "a_folder.mp4")
    assert_refused(res, "phantom", files / "a_folder.mp4", "is a folder; give a file name to write")
    assert listing(files) == before


def test_inspect_fan_png_under_a_file(files, capfd):
    from articulate.readers.video import write_video

    frames = np.zeros((6, 48, 64), np.uint8)
    frames[:, 10:40, 20:44] = np.random.default_rng(0).integers(0, 255, (6, 30, 24))
    video = write_video(files / "in" / "us.mp4", frames, 30.0)
    before = listing(files)
    res = run(capfd, "inspect", video, "--fan-png", files / "a_file" / "fan.png")
    assert_refused(res, "inspect", files / "a_file", "is a file")
    assert listing(files) == before


@pytest.mark.parametrize("where", ["file in the way", "under /proc"])
def test_default_root_dir_that_cannot_be_created(where, files, capfd, monkeypatch):
    monkeypatch.chdir(files)
    root, problem = {"file in the way": (files / "a_file" / "logs", "is a file"),
                     "under /proc": (PROC / "logs", "cannot create this folder")}[where]
    before = listing(files)
    res = run(capfd, "fit", "--config", CONFIGS / "mri2audio.yaml", "--trainer.default_root_dir", root)
    assert_refused(res, "fit", root, problem)
    assert listing(files) == before
