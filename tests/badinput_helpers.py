"""Shared pieces of the bad-input regression suite (tests/test_bad_inputs_*.py).

The convention every refusal is held to: exit status 1, exactly one line
``articulate <cmd>: error: <path or option>: <problem>`` on stderr, no traceback, and no new file
where the command writes. Inputs are built in ``tmp_path``; the tiny checkpoints are built once per
session (``tiny_checkpoints`` in conftest.py) the way ``articulate fit`` writes them.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported at collection: its log handler must not bind to one test's capfd stream
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@dataclass
class Result:
    rc: int
    out: str
    err: str


def run(capfd, *argv: str) -> Result:
    """``articulate ARGV`` in-process; stdout/stderr captured at the file-descriptor level."""
    from articulate.cli.main import main

    capfd.readouterr()  # drop what earlier set-up printed
    rc = main([str(a) for a in argv])
    captured = capfd.readouterr()
    return Result(int(rc), captured.out, captured.err)


def error_lines(err: str, cmd: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"articulate {cmd}: error: ")]


def assert_refused(res: Result, cmd: str, *needles: str | Path) -> str:
    """Exit 1, one error line holding every needle (path, problem words), no traceback; returns the line."""
    assert res.rc == 1, f"exit {res.rc}, stderr:\n{res.err[-3000:]}"
    assert "Traceback" not in res.err, res.err[-3000:]
    lines = error_lines(res.err, cmd)
    assert len(lines) == 1, f"expected one error line, got {lines!r} in:\n{res.err[-3000:]}"
    # No second, unformatted error (an exception repr printed by a library) either.
    others = [line for line in res.err.splitlines() if line not in lines and "Error" in line]
    assert not others, others
    for needle in needles:
        assert str(needle) in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def assert_ok(res: Result) -> None:
    assert res.rc == 0, f"exit {res.rc}, stderr:\n{res.err[-3000:]}"
    assert "Traceback" not in res.err and " error: " not in res.err, res.err[-3000:]


def listing(folder: Path) -> set[str]:
    """Every path under ``folder`` (relative), hidden temp files included."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


# --------------------------------------------------------------------------------------------- audio


def tone(seconds: float, sr: int, peak: float = 0.3, f0: float = 180.0) -> np.ndarray:
    """A voiced-like signal (harmonics of ``f0``, slow amplitude modulation) peaking at ``peak``."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3)) * (1.2 + np.sin(2 * np.pi * 3 * t))
    return (peak * x / np.abs(x).max()).astype(np.float32)


def write_wav(path: Path, wav: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    sf.write(str(path), wav.T if wav.ndim == 2 else wav, sr, subtype=subtype)
    return path


# --------------------------------------------------------------------------------------------- MRI


def sequence(t: int = 6, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((t, h, w)) * 300.0).astype(np.float32)


# ------------------------------------------------------------------------------------- checkpoints


class _RunsCode:
    """Pickles as a call of ``os.system``: a checkpoint holding it must never be unpickled unsafely."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def malicious_checkpoint(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A checkpoint whose unpickling would run ``touch marker`` (torch's zip format, or a bare pickle)."""
    import torch

    payload = {"state_dict": {}, "epoch": 0, "evil": _RunsCode(f"touch {marker}")}
    if legacy:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    else:
        torch.save(payload, path)
    return path


def edited_checkpoint(src: Path, dst: Path, edit) -> Path:
    """A copy of a (trusted, test-built) checkpoint with ``edit(dict)`` applied."""
    import torch

    ck = torch.load(src, map_location="cpu", weights_only=False)
    edit(ck)
    torch.save(ck, dst)
    return dst


def _save_untrained(configs: list[Path], extra: list[str], dest: Path, input_shape=None, setup=None) -> Path:
    """Build the model from configs as `articulate fit` would and save it untrained (no data read)."""
    import lightning as L

    from articulate.training.lightning_cli import ArticulateCLI

    args = [a for c in configs for a in ("--config", str(c))] + ["--trainer.logger", "false", *extra]
    cli = ArticulateCLI(args=args, run=False)
    model = cli.model
    if input_shape is not None:
        model.input_shape = input_shape
    if setup is not None:
        setup(model)
    trainer = L.Trainer(logger=False, accelerator="cpu", devices=1, enable_progress_bar=False)
    trainer.strategy.connect(model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(dest)
    return dest


MRI2AUDIO_TINY = """
model:
  init_args:
    translator:
      init_args: {encoder_channels: [4, 8, 8, 16, 28], decoder_channels: [8, 8, 4], utterance_channels: 4, subject_channels: 20}
    attention:
      init_args: {channels: [4, 4, 8, 8]}
    discriminator:
      init_args: {channels: [4, 8, 8], hidden: 8}
"""


def wav2uti_tiny(tmp: Path, cohort: Path, variant: str | None) -> Path:
    """Tiny sizes over a wav2uti config (the same overlay the wav2uti fit tests use)."""
    from test_wav2uti_fit import tiny_override

    return tiny_override(cohort, variant, tmp)


def wav2uti_stack(variant: str | None) -> list[Path]:
    from test_wav2uti_fit import _stack

    return _stack(variant)


UTI2CONTOUR_TINY = """
model:
  init_args:
    network:
      init_args: {base_channels: 4, depth: 2}
data:
  init_args: {input_size: [64, 80]}
"""


class TinyCheckpoints:
    """Untrained checkpoints of tiny networks, built on first use: ``mri2audio`` (6 x 32 x 32 grid),
    ``wav2uti`` (the diffusion base stage, 16 px), ``wav2uti_dnn`` (the DNN baseline, 16 px) and
    ``uti2contour`` (a 64 x 80 tracker whose mean shape, set by training, is zeros)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @cached_property
    def cohort(self) -> Path:
        from test_wav2uti_data import make_cohort

        return make_cohort(self.root / "cohort", speakers=3, utterances=1, seconds=0.3)

    @cached_property
    def mri2audio(self) -> Path:
        tiny = self.root / "mri2audio_tiny.yaml"
        tiny.write_text(MRI2AUDIO_TINY)
        return _save_untrained([CONFIGS / "mri2audio.yaml", tiny], [], self.root / "mri2audio" / "model.ckpt",
                               input_shape=(6, 32, 32))

    def _wav2uti(self, variant: str | None, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        configs = wav2uti_stack(variant) + [wav2uti_tiny(folder, self.cohort, variant)]
        return _save_untrained(configs, [], folder / "model.ckpt")

    @cached_property
    def wav2uti(self) -> Path:
        return self._wav2uti(None, "wav2uti")

    @cached_property
    def wav2uti_dnn(self) -> Path:
        return self._wav2uti("dnn.yaml", "wav2uti_dnn")

    @cached_property
    def uti2contour(self) -> Path:
        import torch

        tiny = self.root / "uti2contour_tiny.yaml"
        tiny.write_text(UTI2CONTOUR_TINY)

        def seen_data(model):  # what fitting sets: the input size, the keypoint names, the mean shape
            model.input_size = (64, 80)
            model.keypoint_names = [f"k{i}" for i in range(model.mean_shape.shape[0])]
            model.mean_shape = torch.zeros_like(model.mean_shape)

        return _save_untrained([CONFIGS / "uti2contour.yaml", tiny], [], self.root / "uti2contour" / "model.ckpt",
                               setup=seen_data)
