"""`articulate synthesize-audio`: checkpoint loading, input checks, outputs, no partial files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from helpers import MRI_TINY_NETS

from articulate.cli.main import main as articulate
from articulate.errors import InputError
from articulate.readers.mri import write_mri

ROOT = Path(__file__).resolve().parents[1]

# Tiny networks on a 6 x 32 x 32 grid: the paper's architecture at toy width.
TINY = yaml.safe_dump({"model": {"init_args": MRI_TINY_NETS}})


def untrained_checkpoint(tmp: Path, extra_yaml: str = TINY, configs: tuple[str, ...] = ()) -> Path:
    """A checkpoint written as `articulate fit` writes one (hparams from the CLI), without training."""
    import lightning as L

    from articulate.training.lightning_cli import ArticulateCLI

    override = tmp / "tiny.yaml"
    override.write_text(extra_yaml)
    args = ["--config", str(ROOT / "configs/mri2audio.yaml")]
    for c in configs:
        args += ["--config", str(ROOT / c)]
    args += ["--config", str(override), "--trainer.logger", "false"]
    cli = ArticulateCLI(args=args, run=False)
    model = cli.model
    model.input_shape = (6, 32, 32)
    trainer = L.Trainer(logger=False, accelerator="cpu", devices=1, enable_progress_bar=False)
    trainer.strategy.connect(model)
    path = tmp / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("ckpt"))


def mri_file(path: Path, frames: np.ndarray) -> Path:
    if path.suffix == ".npy":
        np.save(path, frames)
    else:
        write_mri(path, frames)
    return path


def sequence(t: int = 6, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((t, h, w)).astype(np.float32) * 300.0


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_single_file_writes_wav_and_pngs(ckpt, tmp_path, capsys):
    src = mri_file(tmp_path / "seq.nii.gz", sequence())
    out = tmp_path / "out" / "speech.wav"
    assert articulate(["synthesize-audio", "--ckpt", str(ckpt), "--mri", str(src), "--out", str(out)]) == 0
    wav, sr = sf.read(out)
    assert sr == 22050
    assert wav.ndim == 1 and len(wav) == 330 * 63  # 64 mel frames, centred STFT, hop 330
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0
    assert (tmp_path / "out" / "speech.mel.png").stat().st_size > 0
    assert (tmp_path / "out" / "speech.attention.png").stat().st_size > 0
    assert listing(tmp_path / "out") == {"speech.wav", "speech.mel.png", "speech.attention.png"}
    assert "seq.nii.gz" in capsys.readouterr().out


def test_prediction_matches_the_module_forward(ckpt, tmp_path):
    """The CLI's mel is the module's forward on the DataModule's preprocessing of the file."""
    from articulate.cli.synthesize_audio import load_mri2audio, predict, read_sequence
    from articulate.transforms.mri import prepare_mri

    frames = sequence(seed=3)
    src = mri_file(tmp_path / "a.npy", frames)
    model = load_mri2audio(ckpt)
    seq = read_sequence(src, model)  # the checkpoint's grid (6, 32, 32) and percentiles (0.5, 99.5)
    mel, masks = predict(model, seq.model_input[None], "cpu")
    with torch.no_grad():
        ref = model(prepare_mri(frames, 6, 32)[None, None])
    torch.testing.assert_close(mel, ref[:, 0])
    assert masks.shape == (1, 6, 32, 32)


def test_torch_and_librosa_griffin_lim_agree(ckpt, tmp_path):
    src = mri_file(tmp_path / "a.npy", sequence(seed=4))
    outs = {}
    for method in ("torch", "librosa"):
        out = tmp_path / f"{method}.wav"
        assert articulate(["synthesize-audio", "--ckpt", str(ckpt), "--mri", str(src), "--out", str(out),
                           "--griffin-lim", method, "--no-png"]) == 0
        outs[method] = sf.read(out)[0]
    a, b = outs["torch"], outs["librosa"]
    assert len(a) == len(b)
    # Same magnitude target and the same seeded initial phase: the two spectrograms agree closely.
    import librosa

    sa, sb = np.abs(librosa.stft(a, n_fft=1024, hop_length=330)), np.abs(librosa.stft(b, n_fft=1024, hop_length=330))
    assert np.corrcoef(sa.ravel(), sb.ravel())[0, 1] > 0.95


def test_folder_mode_resamples_and_mirrors_layout(ckpt, tmp_path, caplog):
    src = tmp_path / "in"
    (src / "s1").mkdir(parents=True)
    mri_file(src / "s1" / "asouk.nii.gz", sequence(t=12, h=64, w=64))  # another grid: resampled
    mri_file(src / "b.npy", sequence(seed=1))
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    assert articulate(["synthesize-audio", "--ckpt", str(ckpt), "--mri", str(src), "--out", str(out), "--batch-size", "2"]) == 0
    assert {"s1/asouk.wav", "b.wav", "s1/asouk.mel.png", "b.attention.png"} <= listing(out)
    assert "resampled to the model's grid 6x32x32" in caplog.text


@pytest.mark.parametrize(
    "frames,problem",
    [
        (sequence(t=1), "at least 2 frames"),
        (sequence(t=40), "another time scale"),
        (sequence(h=8, w=8), "too small"),
        (sequence(h=32, w=96), "aspect ratio"),
        (np.full((6, 32, 32), 7.0, np.float32), "same intensity"),
    ],
)
def test_bad_sequences_are_refused_without_output(ckpt, tmp_path, frames, problem, capsys):
    src = mri_file(tmp_path / "bad.npy", frames)
    out = tmp_path / "out"
    rc = articulate(["synthesize-audio", "--ckpt", str(ckpt), "--mri", str(src), "--out", str(out / "x.wav")])
    err = capsys.readouterr().err
    assert rc == 1 and problem in err and "bad.npy" in err
    assert not out.exists() or listing(out) == set()


def test_nan_volume_is_refused(ckpt, tmp_path, capsys):
    frames = sequence()
    frames[2, 5, 5] = np.nan
    src = mri_file(tmp_path / "nan.npy", frames)
    rc = articulate(["synthesize-audio", "--ckpt", str(ckpt), "--mri", str(src), "--out", str(tmp_path / "x.wav")])
    assert rc == 1 and "NaN" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_one_bad_file_in_a_folder_writes_nothing(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    mri_file(src / "a_good.npy", sequence())
    mri_file(src / "z_bad.npy", sequence(t=1))
    out = tmp_path / "out"
    assert articulate(["synthesize-audio", "--ckpt", str(ckpt), "--mri", str(src), "--out", str(out)]) == 1
    assert "z_bad.npy" in capsys.readouterr().err
    assert not out.exists() or listing(out) == set()


def test_missing_and_foreign_checkpoints(tmp_path, capsys):
    src = mri_file(tmp_path / "a.npy", sequence())
    rc = articulate(["synthesize-audio", "--ckpt", str(tmp_path / "nope.ckpt"), "--mri", str(src), "--out", str(tmp_path / "x.wav")])
    assert rc == 1 and "checkpoint not found" in capsys.readouterr().err

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    rc = articulate(["synthesize-audio", "--ckpt", str(garbage), "--mri", str(src), "--out", str(tmp_path / "x.wav")])
    assert rc == 1 and "not a readable PyTorch checkpoint" in capsys.readouterr().err

    # A wav2uti checkpoint: refused by its direction, before anything is read or written.
    foreign = tmp_path / "wav2uti.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "lightning_modules.wav2uti_dnn.Wav2UTIDNN"}}, foreign)
    rc = articulate(["synthesize-audio", "--ckpt", str(foreign), "--mri", str(src), "--out", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err
    assert rc == 1 and "wav2uti" in err and "synthesize-uti" in err
    torch.save({"state_dict": {}, "hyper_parameters": {}, "articulate": {"direction": "wav2uti"}}, foreign)
    rc = articulate(["synthesize-audio", "--ckpt", str(foreign), "--mri", str(src), "--out", str(tmp_path / "x.wav")])
    assert rc == 1 and "wav2uti" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_output_must_match_input_kind(ckpt, tmp_path):
    from articulate.cli.synthesize_audio import find_inputs

    src = tmp_path / "in"
    src.mkdir()
    mri_file(src / "a.npy", sequence())
    with pytest.raises(InputError, match="must be a folder"):
        find_inputs(src, tmp_path / "x.wav")
    with pytest.raises(InputError, match="not an MRI sequence"):
        find_inputs(tmp_path / "in" / "a.npy.txt" if (tmp_path / "in" / "a.npy.txt").write_text("x") else None, tmp_path / "o.wav")
    assert find_inputs(src / "a.npy", tmp_path / "outdir") == [(src / "a.npy", tmp_path / "outdir" / "a.wav")]


def test_lip2audspec_checkpoint_synthesizes(tmp_path):
    yaml = """
model:
  init_args:
    network:
      init_args: {window_stride: 2, conv_channels: [2, 2, 2, 4, 4, 4, 4], lstm_hidden: 8, dense: 16}
data:
  init_args: {size: 32}   # the network's image_size is linked from it
"""
    path = untrained_checkpoint(tmp_path, yaml, configs=("configs/mri2audio/lip2audspec.yaml",))
    src = mri_file(tmp_path / "a.npy", sequence())
    out = tmp_path / "o.wav"
    assert articulate(["synthesize-audio", "--ckpt", str(path), "--mri", str(src), "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "o.mel.png").exists() and not (tmp_path / "o.attention.png").exists()


@pytest.mark.parametrize("variant", ["frame_translator", "harmonic"])
def test_frame_translator_checkpoint_synthesizes_like_its_module(tmp_path, variant):
    """The frame_translator and harmonic variants' checkpoints load through the CLI's code (weights only) and give
    the module's forward; the harmonic F draws through the data's mel (linked). (Not vocoded here: an untrained F's
    saturated mel makes librosa's mel inversion slow.)"""
    from articulate.cli.synthesize_audio import load_mri2audio, predict, read_sequence
    from articulate.networks.mri2audio.frame_translator import FrameTranslator
    from articulate.networks.mri2audio.harmonic import HarmonicFrameTranslator
    from articulate.transforms.mri import prepare_mri

    tiny = yaml.safe_dump({"model": {"init_args": {
        "translator": {"init_args": {"frame_channels": [4, 4, 8, 8], "frame_grid": 2, "temporal_channels": 8,
                                     "utterance_channels": 2, "subject_channels": 3}},
        "attention": MRI_TINY_NETS["attention"], "discriminator": MRI_TINY_NETS["discriminator"]}},
        "data": {"init_args": {"mel": {"fmax": 8000.0}}}})
    path = untrained_checkpoint(tmp_path, tiny, configs=(f"configs/mri2audio/{variant}.yaml",))
    model = load_mri2audio(path)
    assert isinstance(model.translator, FrameTranslator) and model.translator.frame_norms[0].num_groups == 1
    assert model.mel_config.fmax == 8000.0
    if variant == "harmonic":
        assert isinstance(model.translator, HarmonicFrameTranslator)
        assert model.translator.mel_config == model.mel_config  # one source: the data section
    frames = sequence(seed=4)
    seq = read_sequence(mri_file(tmp_path / "a.npy", frames), model)
    mel, _ = predict(model, seq.model_input[None], "cpu")
    with torch.no_grad():
        ref = model(prepare_mri(frames, 6, 32)[None, None])
    torch.testing.assert_close(mel, ref[:, 0])
