"""Bad-input classes, enumerated from the parsers (tests/badinput_enum.py): every tool command, every number
option, every device option, every output against every input. A new command or option is covered the day
it is declared; a number option declared without the shared checks fails ``test_every_option_is_declared``.

Each case runs ``main(argv)`` in-process and must be refused by the parser's checks: exit 1, one line
``articulate <cmd>: error: <option> ...``, no traceback, no file written, and nothing loaded (no checkpoint
read, no cohort generated: the ``nothing_loaded`` fixture fails the test if one is).
"""

from __future__ import annotations

import hashlib
import os

import pytest
from badinput_enum import all_parsers_are_checked, bad_values, flag, good_values, levels
from badinput_helpers import assert_refused, listing, run

LEVELS = levels()
NUMBER_CASES = [(lv, a, spec, value, what) for lv in LEVELS for a, spec in lv.declared()
                if spec.kind in ("number", "list", "size") for value, what in bad_values(spec)]
DEVICE_LEVELS = [(lv, a) for lv in LEVELS for a, _ in lv.declared("device")]
OUT_IN_CASES = [(lv, out, inp) for lv in LEVELS for out, _ in lv.declared("path", "output")
                for inp, _ in lv.declared("path", "input")]


@pytest.fixture
def nothing_loaded(monkeypatch):
    """Refusals come before any work: reading a checkpoint, building a model or generating a cohort fails the test."""
    import articulate.checkpoints as checkpoints
    import articulate.phantom.cohort as cohort

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(checkpoints.Checkpoint, "read", classmethod(forbidden))
    monkeypatch.setattr(cohort, "_generate_into", forbidden)
    monkeypatch.setattr(cohort, "ensure_phantom", forbidden)


def test_every_option_is_declared():
    """Every tool builds its parser with articulate.training.options (its checks run on every option), and no number
    option bypasses them (a plain ``type=int``/``type=float`` would let ``nan`` or ``-5`` through)."""
    assert all_parsers_are_checked() == []
    # the enumeration reaches every command and sub-command
    names = {lv.name for lv in LEVELS}
    assert {"synthesize-uti", "synthesize-audio", "track-contours", "phantom wav2uti", "phantom mri2audio",
            "phantom preview", "phantom ceiling", "score", "inspect", "transcribe", "bench", "reproduce mri2audio", "reproduce wav2uti"} <= names


def test_enumeration_sizes():
    """The classes below enumerate this many cases (printed in the report; a drop means options were lost)."""
    per_class = {"numbers": len(NUMBER_CASES), "devices": len(DEVICE_LEVELS), "outputs vs inputs": len(OUT_IN_CASES)}
    print(per_class)
    assert per_class["numbers"] >= 350 and per_class["devices"] >= 5 and per_class["outputs vs inputs"] >= 14


@pytest.mark.parametrize("level, action, spec, value, what", NUMBER_CASES,
                         ids=[f"{c[0].name} {flag(c[1])}={c[3]}" for c in NUMBER_CASES])
def test_every_number_option_refuses_bad_values(level, action, spec, value, what, tmp_path, capfd, nothing_loaded):
    argv = level.base_argv(tmp_path, skip=(action,) if action.required else ())
    if action.option_strings:
        argv.append(f"{flag(action)}={value}")  # --x=-inf: argparse would take a bare -inf for an option
    else:
        argv.insert(len(level.argv), value)
    before = listing(tmp_path)
    res = run(capfd, *argv)
    line = assert_refused(res, level.command, flag(action))
    assert what in line, line
    assert listing(tmp_path) == before


@pytest.mark.parametrize("level, action, spec", [(lv, a, s) for lv in LEVELS for a, s in lv.declared()
                                                  if s.kind in ("number", "list", "size")],
                         ids=lambda x: x.name if hasattr(x, "parser") else (flag(x) if hasattr(x, "option_strings") else ""))
def test_every_number_option_accepts_its_range(level, action, spec):
    """The declared range is not empty and its edges pass the same check (the refusals above are not 'refuse all')."""
    for value in good_values(spec):
        spec.check(value, flag(action))


@pytest.mark.parametrize("level, action", DEVICE_LEVELS, ids=[lv.name for lv, _ in DEVICE_LEVELS])
@pytest.mark.parametrize("device, problem", [("bogus", "expected cpu, cuda, cuda:N or mps"), ("cuda:x", "expected cpu"),
                                             ("cpu:3", "expected cpu"), ("cuda:99", "cuda")])
def test_every_device_option_is_checked(level, action, device, problem, tmp_path, capfd, nothing_loaded):
    import torch

    if device == "cuda:99" and not torch.cuda.is_available():
        problem = "no CUDA device: use --device cpu"
    res = run(capfd, *level.base_argv(tmp_path), f"{flag(action)}={device}")
    assert_refused(res, level.command, problem)


@pytest.mark.parametrize("level, action", DEVICE_LEVELS, ids=[lv.name for lv, _ in DEVICE_LEVELS])
def test_every_device_option_without_a_gpu(level, action, tmp_path, capfd, nothing_loaded, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    res = run(capfd, *level.base_argv(tmp_path), f"{flag(action)}=cuda")
    assert_refused(res, level.command, "no CUDA device: use --device cpu")


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("link", ["same path", "symlink", "hard link", "relative path"])
@pytest.mark.parametrize("level, out, inp", OUT_IN_CASES, ids=[f"{lv.name} {flag(o)}={flag(i)}" for lv, o, i in OUT_IN_CASES])
def test_no_output_is_an_input(level, out, inp, link, tmp_path, capfd, nothing_loaded, monkeypatch):
    """Every output option given one of the command's inputs (itself, a symlink or a hard link to it, or the same
    file by another relative path) is refused with one line naming it; the input is untouched."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    argv = level.base_argv(tmp_path, skip=(out, inp))
    target = tmp_path / "shared.dat"
    target.write_bytes(b"the user's recording")
    digest = _digest(target)
    given = {"same path": target, "symlink": tmp_path / "link.dat", "hard link": tmp_path / "hard.dat",
             "relative path": "sub/../shared.dat"}[link]
    if link == "symlink":
        given.symlink_to(target)
    elif link == "hard link":
        os.link(target, given)
    for action, value in ((inp, target), (out, given)):
        if action.option_strings:
            argv += [flag(action), str(value)]
        else:
            argv.insert(len(level.argv), str(value))
    before = listing(tmp_path)
    res = run(capfd, *argv)
    assert_refused(res, level.command, "is also an input of this command", flag(inp))
    assert _digest(target) == digest and listing(tmp_path) == before
    assert os.path.islink(tmp_path / "link.dat") == (link == "symlink")


def test_writing_into_the_input_folder_is_valid_but_not_over_an_input(tiny_checkpoints, tmp_path, capfd):
    """`--mri DIR --out DIR` writes the WAVs beside the sequences (a valid use); a WAV name that is a link to one
    of the sequences is refused before the model is loaded, and the sequence is untouched."""
    import numpy as np
    from badinput_helpers import assert_ok, sequence

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", sequence())
    res = run(capfd, "synthesize-audio", "--ckpt", tiny_checkpoints.mri2audio, "--mri", data, "--out", data,
              "--n-iter", "1", "--no-png", "--device", "cpu")
    assert_ok(res)
    assert listing(data) == {"a.npy", "a.wav"}
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.wav").symlink_to(data / "a.npy")
    digest = _digest(data / "a.npy")
    res = run(capfd, "synthesize-audio", "--ckpt", tmp_path / "missing.ckpt", "--mri", data / "a.npy", "--out", out,
              "--n-iter", "1", "--no-png")
    assert_refused(res, "synthesize-audio", out / "a.wav", "is also an input of this command")
    assert _digest(data / "a.npy") == digest
