"""Bad and unusual tagged-MRI sequences through `articulate inspect` and `articulate synthesize-audio`."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from badinput_helpers import assert_ok, assert_refused, listing, run, sequence

from articulate.readers.mri import write_mri


def _not_nifti(tmp):
    path = tmp / "scan.nii.gz"
    path.write_bytes(b"subject 7, session 2: tagged cine, see notes\n" * 8)
    return path, "not a readable NIfTI file"


def _gzip_of_garbage(tmp):
    path = tmp / "garbage.nii.gz"
    path.write_bytes(gzip.compress(np.random.default_rng(1).bytes(600)))
    return path, "not a readable NIfTI file"


def _raw_bytes_nii(tmp):
    path = tmp / "raw.nii"
    path.write_bytes(np.random.default_rng(2).bytes(400))
    return path, "not a readable NIfTI file"


def _nan_volume(tmp):
    frames = sequence()
    frames[2, 5:7, 5] = np.nan
    return write_mri(tmp / "nan.nii.gz", frames), "2 NaN or infinite values"


def _one_d(tmp):
    path = tmp / "line.npy"
    np.save(path, np.arange(50, dtype=np.float32))
    return path, "got 1-D data of shape (50,)"


def _five_d(tmp):
    path = tmp / "five.npy"
    np.save(path, np.zeros((2, 3, 4, 5, 6), np.float32))
    return path, "got 5-D data"


def _five_d_nifti(tmp):
    import nibabel as nib

    path = tmp / "five.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2, 3, 2), np.float32), np.eye(4)), str(path))
    return path, "expected a 2-D slice over time"


def _several_slices(tmp):
    import nibabel as nib

    path = tmp / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 5, 6), np.float32), np.eye(4)), str(path))
    return path, "has 5 slices"


def _npz_several_arrays(tmp):
    path = tmp / "two.npz"
    np.savez(path, cine=sequence(), mask=sequence(seed=1))
    return path, "expected key 'frames' or a single array, found keys ['cine', 'mask']"


def _one_frame(tmp):
    path = tmp / "one.npy"
    np.save(path, sequence(t=1))
    return path, "only 1 frame"


def _text_npy(tmp):
    path = tmp / "notes.npy"
    path.write_text("frames: 26\n")
    return path, "not a NumPy .npy file"


def _text_npz(tmp):
    path = tmp / "notes.npz"
    path.write_text("frames: 26\n")
    return path, "not a NumPy .npz file"


READER_REFUSED = {"text named .nii.gz": _not_nifti, "gzip of garbage": _gzip_of_garbage, "random bytes .nii": _raw_bytes_nii,
                  "NaN volume": _nan_volume, "1-D array": _one_d, "5-D array": _five_d, "5-D NIfTI": _five_d_nifti,
                  "several slices": _several_slices, "npz without frames": _npz_several_arrays, "1 frame": _one_frame,
                  "text named .npy": _text_npy, "text named .npz": _text_npz}


@pytest.mark.parametrize("case", list(READER_REFUSED))
def test_inspect_refuses_bad_mri(case, tmp_path, capfd):
    path, problem = READER_REFUSED[case](tmp_path)
    assert_refused(run(capfd, "inspect", path), "inspect", path, problem)


def _synth(capfd, ckpt, src, out, *extra):
    return run(capfd, "synthesize-audio", "--ckpt", ckpt, "--mri", src, "--out", out, "--n-iter", "1", *extra)


@pytest.mark.parametrize("case", ["text named .nii.gz", "gzip of garbage", "NaN volume", "5-D array", "npz without frames",
                                  "1 frame"])
def test_synthesize_audio_refuses_bad_mri(case, tiny_checkpoints, tmp_path, capfd):
    path, problem = READER_REFUSED[case](tmp_path)
    out = tmp_path / "out"
    assert_refused(_synth(capfd, tiny_checkpoints.mri2audio, path, out / "x.wav"), "synthesize-audio", path, problem)
    assert listing(out) == set()


@pytest.mark.parametrize("frames,problem", [
    (np.full((6, 32, 32), 7.0, np.float32), "every voxel has the same intensity"),
    (sequence(h=20, w=400), "frames of 20x400 pixels: aspect ratio beyond 2:1"),
])
def test_constant_or_elongated_volume_inspects_but_is_not_synthesized(frames, problem, tiny_checkpoints, tmp_path, capfd):
    path = write_mri(tmp_path / "odd.nii.gz", frames)
    res = run(capfd, "inspect", path, "--json")
    assert_ok(res)
    assert json.loads(res.out)["frames"] == frames.shape[0]  # readable: inspect shows it
    out = tmp_path / "out"
    assert_refused(_synth(capfd, tiny_checkpoints.mri2audio, path, out / "x.wav"), "synthesize-audio", path, problem)
    assert listing(out) == set()


def test_folder_mixing_good_and_bad_files_writes_nothing(tiny_checkpoints, tmp_path, capfd):
    src = tmp_path / "in"
    (src / "s1").mkdir(parents=True)
    write_mri(src / "s1" / "a_good.nii.gz", sequence())
    np.save(src / "s1" / "b_good.npy", sequence(seed=2))
    bad, problem = _gzip_of_garbage(src / "s1")
    out = tmp_path / "out"
    res = _synth(capfd, tiny_checkpoints.mri2audio, src, out)
    assert_refused(res, "synthesize-audio", bad, problem)
    assert listing(out) == set()


def test_folder_without_sequences(tiny_checkpoints, tmp_path, capfd):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("nothing here")
    res = _synth(capfd, tiny_checkpoints.mri2audio, tmp_path / "in", tmp_path / "out")
    assert_refused(res, "synthesize-audio", tmp_path / "in", "no MRI sequences")
    assert not (tmp_path / "out").exists()


def test_valid_unusual_sequences(tiny_checkpoints, tmp_path, capfd, caplog):
    """A 4-D (X, Y, 1, T) NIfTI and a non-square 9-frame sequence on another grid: resampled, synthesized."""
    import nibabel as nib
    import soundfile as sf

    frames = sequence(t=9, h=24, w=40)
    data = np.ascontiguousarray(frames[:, ::-1, :].transpose(2, 1, 0))[:, :, None, :]  # (X, Y, 1, T), Y up
    path = tmp_path / "cine4d.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    res = run(capfd, "inspect", path, "--json")
    assert_ok(res)
    assert json.loads(res.out)["shape"] == [9, 24, 40]
    out = tmp_path / "out" / "speech.wav"
    res = _synth(capfd, tiny_checkpoints.mri2audio, path, out, "--no-png")
    assert_ok(res)
    assert "resampled to the model's grid 6x32x32" in caplog.text  # a logged warning (stderr), not an error
    wav, sr = sf.read(out)
    assert sr == 22050 and len(wav) == 330 * 63 and np.isfinite(wav).all()
    assert listing(out.parent) == {"speech.wav"}
