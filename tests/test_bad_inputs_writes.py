"""Writes, enumerated over every command that writes (tests/badinput_enum.py: the parsers' output options, and
``transcribe``'s transcripts): each has a recipe (a valid call) and must

* on a disk that fills up part way (a small tmpfs in a user namespace; else a file size limit), exit 1 with one
  line naming the output and the reason, no traceback, and leave nothing: no partial output, no temporary;
* when interrupted (Ctrl-C) after writing everything but before renaming it, exit 130 with one line and leave
  nothing either.

Stale temporaries of killed runs are removed by the next run only when their writer is provably gone, and a
cohort folder without its manifest is refused by the readers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from badinput_enum import levels
from badinput_helpers import assert_ok, assert_refused, listing, run, sequence, tone, write_wav

HERE = Path(__file__).resolve().parent
# Commands that write and why one has no recipe here (a new writing command must get a recipe or a reason).
SKIP = {"reproduce": "its outputs are the training runs' records and tables (articulate.experiments: atomic_path); "
                     "a run takes minutes"}


def writing_commands() -> set[str]:
    return {lv.name for lv in levels() if lv.declared("path", "output")} | {"transcribe"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_checkpoints):
    from articulate.phantom import generate
    from articulate.readers.video import write_video

    root = tmp_path_factory.mktemp("write-inputs")
    write_wav(root / "speech.wav", tone(0.5, 16000), 16000)
    (root / "mri").mkdir()
    np.save(root / "mri" / "a.npy", sequence(6, 32, 32, seed=1))
    np.save(root / "mri" / "b.npy", sequence(6, 32, 32, seed=2))
    frames = np.zeros((6, 48, 64), np.uint8)
    frames[:, 10:40, 20:44] = np.random.default_rng(0).integers(0, 255, (6, 30, 24))
    write_video(root / "clip.mp4", frames, 30.0)
    generate("wav2uti", root / "cohort", subjects=1, vowels=1, words=0, sentences=0, quiet=True, workers=1)
    ck = tiny_checkpoints
    return {"root": root, "mri2audio": ck.mri2audio, "wav2uti_dnn": ck.wav2uti_dnn, "uti2contour": ck.uti2contour}


def recipes(i: dict) -> dict[str, dict]:
    """A valid call of each writing command, its outputs under ``{OUT}``."""
    r = i["root"]
    return {
        "synthesize-uti": {"argv": ["synthesize-uti", "--ckpt", i["wav2uti_dnn"], "--audio", r / "speech.wav",
                                    "--out", "{OUT}/y.mp4", "--device", "cpu"]},
        "synthesize-audio": {"argv": ["synthesize-audio", "--ckpt", i["mri2audio"], "--mri", r / "mri",
                                      "--out", "{OUT}/wavs", "--n-iter", "1", "--device", "cpu"]},
        "track-contours": {"argv": ["track-contours", "--ckpt", i["uti2contour"], "--input", r / "clip.mp4", "--out",
                                    "{OUT}/t.csv", "--overlay", "{OUT}/o.mp4", "--quiet", "--device", "cpu"]},
        "phantom wav2uti": {"argv": ["phantom", "wav2uti", "--out", "{OUT}/cohort", "--subjects", "1", "--vowels", "1",
                                     "--words", "0", "--sentences", "0", "--workers", "1", "--quiet"]},
        "phantom mri2audio": {"argv": ["phantom", "mri2audio", "--out", "{OUT}/cohort", "--subjects", "1",
                                       "--workers", "1", "--quiet"]},
        "phantom preview": {"argv": ["phantom", "preview", r / "cohort", "--out", "{OUT}/preview.png"]},
        "phantom ceiling": {"argv": ["phantom", "ceiling", "--subjects", "2", "--recordings", "1", "--crops", "1",
                                     "--draws", "1", "--quiet", "--out", "{OUT}/ceiling.json"], "patch": "ceiling"},
        "inspect": {"argv": ["inspect", r / "clip.mp4", "--fan-png", "{OUT}/fan.png"]},
        "bench": {"argv": ["bench", "--out", "{OUT}/bench.json", "--device", "cpu"], "patch": "bench"},
        "transcribe": {"argv": ["transcribe", "{OUT}/speech.wav", "--model", "whisper-stand-in", "--device", "cpu"],
                       "patch": "whisper", "copy": [[r / "speech.wav", "speech.wav"]]},
    }


def test_every_writing_command_has_a_recipe(inputs):
    missing = {c for c in writing_commands() - set(recipes(inputs)) if c.split()[0] not in SKIP}
    assert not missing, f"writing commands without a recipe in {__file__}: {sorted(missing)}"


def _can_mount() -> bool:
    if os.environ.get("ARTICULATE_TEST_DISKFULL") == "fsize":  # the fallback, on purpose
        return False
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def full_disk(inputs, tmp_path_factory):
    """Every recipe run on a normal folder, then on a full one, in one driver process."""
    work = tmp_path_factory.mktemp("diskfull")
    mode = "tmpfs" if _can_mount() else "fsize"
    cases = []
    for name, recipe in recipes(inputs).items():
        argv = [str(a) for a in recipe["argv"]]
        cases.append({"name": name, "argv": argv, "patch": recipe.get("patch"),
                      "copy": [[str(a), b] for a, b in recipe.get("copy", [])]})
    spec = work / "spec.json"
    spec.write_text(json.dumps({"mode": mode, "work": str(work), "cases": cases}))
    cmd = [sys.executable, str(HERE / "diskfull_driver.py"), str(spec), str(work / "result.json")]
    if mode == "tmpfs":
        cmd = ["unshare", "-rm", *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return mode, {r["name"]: r for r in json.loads((work / "result.json").read_text())}


@pytest.mark.parametrize("name", sorted(c for c in writing_commands() if c.split()[0] not in SKIP))
def test_a_full_disk_is_one_line_and_leaves_nothing(name, full_disk):
    mode, results = full_disk
    r = results[name]
    assert r["normal_rc"] == 0, r["normal_err"]  # the recipe is a valid call
    assert r["rc"] == 1, r["err"][-3000:]
    assert "Traceback" not in r["err"], r["err"][-3000:]
    command = name.split()[0]
    lines = [line for line in r["err"].splitlines() if line.startswith(f"articulate {command}: error: ")]
    assert len(lines) == 1, r["err"][-3000:]
    reason = "no space left on device" if mode == "tmpfs" else "file too large"
    assert f"cannot write: {reason}" in lines[0] and r["out"] in lines[0], lines[0]
    assert set(r["left"]) == set(r["copied"]), r["left"]  # no partial output, no temporary


@pytest.mark.parametrize("name", sorted(c for c in writing_commands() if c.split()[0] not in SKIP))
def test_an_interrupt_before_the_rename_leaves_nothing(name, inputs, tmp_path, capfd, monkeypatch):
    """Ctrl-C after every file was written to its temporary, before any rename: nothing appears, nothing stays."""
    import diskfull_driver

    from articulate.utils import atomic

    recipe = recipes(inputs)[name]
    if recipe.get("patch"):
        diskfull_driver._patch(recipe["patch"], monkeypatch.setattr)  # undone after the test
    for src, dst in recipe.get("copy", []):
        shutil.copy(src, tmp_path / dst)

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.OutputSet, "commit", interrupted)
    before = listing(tmp_path)
    res = run(capfd, *[str(a).replace("{OUT}", str(tmp_path)) for a in recipe["argv"]])
    assert res.rc == 130 and "Traceback" not in res.err, res.err[-3000:]
    assert f"articulate {name.split()[0]}: interrupted" in res.err
    assert listing(tmp_path) == before


# --------------------------------------------------------------------------------------------- temporaries


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_swept_only_when_their_writer_is_gone(tmp_path):
    from articulate.utils.atomic import STALE_AFTER_S, _host, sweep_stale

    host = _host()
    dead = tmp_path / f".x.~tmp-{host}-{_dead_pid()}-0a1b2c3d.wav"
    alive = tmp_path / f".y.~tmp-{host}-{os.getppid()}-0a1b2c3d.wav"  # pytest's parent: running
    mine = tmp_path / f".z.~tmp-{host}-{os.getpid()}-0a1b2c3d.wav"
    other_old = tmp_path / ".w.~tmp-otherhost-123-0a1b2c3d.wav"
    other_new = tmp_path / ".v.~tmp-otherhost-124-0a1b2c3d"
    cohort = tmp_path / f".cohort.~tmp-{host}-{_dead_pid()}-0a1b2c3d"
    user = tmp_path / ".x.wav.tmp"  # not ours: never touched
    for p in (dead, alive, mine, other_old, user):
        p.write_bytes(b"partial")
    other_new.mkdir()
    (cohort / "spk01").mkdir(parents=True)
    old = time.time() - STALE_AFTER_S - 60
    os.utime(other_old, (old, old))
    removed = sweep_stale(tmp_path, force=True)
    assert {p.name for p in removed} == {dead.name, other_old.name, cohort.name}
    assert {p.name for p in tmp_path.iterdir()} == {alive.name, mine.name, other_new.name, user.name}


def test_a_reused_pid_does_not_keep_a_temporary(tmp_path):
    """The id of a dead writer now held by a process started after the temporary was written: stale."""
    from articulate.utils.atomic import _host, is_stale

    p = tmp_path / f".x.~tmp-{_host()}-{os.getpid()}-0a1b2c3d.wav"
    p.write_bytes(b"x")
    os.utime(p, (0, 0))  # written long before this process started
    assert not is_stale(p)  # our own temporaries are never swept...
    q = tmp_path / f".x.~tmp-{_host()}-{os.getppid()}-0a1b2c3d.wav"
    q.write_bytes(b"x")
    os.utime(q, (0, 0))  # ...but another live process born after 1970 did not write this one
    assert is_stale(q)


def test_the_next_run_sweeps_a_killed_runs_temporaries(tmp_path, capfd):
    """A writer killed mid-write left temporaries beside its outputs; the next command writing there removes
    them, and keeps a concurrent writer's."""
    from articulate.utils.atomic import _host

    host = _host()
    killed = tmp_path / f".y.~tmp-{host}-{_dead_pid()}-00ff00ff.mp4"
    cohort = tmp_path / f".cohort.~tmp-{host}-{_dead_pid()}-00ff00ff"
    running = tmp_path / f".z.~tmp-{host}-{os.getppid()}-00ff00ff.mp4"
    killed.write_bytes(b"half a video")
    (cohort / "spk01").mkdir(parents=True)
    running.write_bytes(b"being written")
    res = run(capfd, "phantom", "wav2uti", "--out", tmp_path / "cohort", "--subjects", "1", "--vowels", "1",
              "--words", "0", "--sentences", "0", "--workers", "1", "--quiet")
    assert_ok(res)
    assert not killed.exists() and not cohort.exists() and running.exists()


def test_a_killed_cached_cohort_is_swept_by_the_next_fit(tmp_path, monkeypatch):
    """ensure_phantom (what a fit calls) removes a killed generation's temporary cohort from the cache."""
    from articulate.phantom import ensure_phantom
    from articulate.utils.atomic import _host

    monkeypatch.setenv("ARTICULATE_CACHE", str(tmp_path / "cache"))
    leftover = tmp_path / "cache" / "phantom" / f".wav2uti-0123456789.~tmp-{_host()}-{_dead_pid()}-abcdef01"
    (leftover / "spk01").mkdir(parents=True)
    root = ensure_phantom("wav2uti", subjects=1, vowels=1, words=0, sentences=0, workers=1)
    assert (root / "manifest.csv").is_file() and not leftover.exists()


def test_a_cohort_without_its_manifest_is_refused(tmp_path, capfd):
    """What an interrupted generation of an older version left (or a manifest deleted): refused, not guessed."""
    from articulate.phantom import generate

    generate("wav2uti", tmp_path / "cohort", subjects=1, vowels=1, words=0, sentences=0, quiet=True, workers=1)
    (tmp_path / "cohort" / "manifest.csv").unlink()
    res = run(capfd, "inspect", tmp_path / "cohort")
    assert_refused(res, "inspect", tmp_path / "cohort", "a phantom cohort without its manifest.csv")
    (tmp_path / "cohort" / "phantom.json").unlink()  # the recordings' ground truth still marks it
    assert_refused(run(capfd, "inspect", tmp_path / "cohort"), "inspect", "without its manifest.csv")


def test_an_existing_folder_that_is_not_a_cohort_is_not_replaced(tmp_path, capfd):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.wav").write_bytes(b"the user's file")
    res = run(capfd, "phantom", "wav2uti", "--out", tmp_path / "data", "--subjects", "1", "--quiet", "--workers", "1")
    assert_refused(res, "phantom", tmp_path / "data", "folder is not empty")
    assert listing(tmp_path) == {"data", "data/mine.wav"}
