"""MRI sequences: exact round trips, the on-disk orientation checked through nibabel, refusals."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from articulate.errors import InputError
from articulate.readers.mri import MRISequence, read_mri, write_mri


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).random((6, 10, 12), dtype=np.float32)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".npy", ".npz"])
def test_round_trip_is_exact(tmp_path, frames, suffix):
    path = write_mri(tmp_path / f"seq{suffix}", frames, pixel_mm=(1.87, 2.5), frame_s=0.0435)
    seq = read_mri(path)
    assert isinstance(seq, MRISequence) and seq.path == path
    assert seq.frames.dtype == np.float32 and seq.frames.shape == (6, 10, 12)
    np.testing.assert_array_equal(seq.frames, frames)
    if suffix != ".npy":  # a bare .npy carries no geometry
        assert seq.pixel_mm == pytest.approx((1.87, 2.5)) and seq.frame_s == pytest.approx(0.0435)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"seq{suffix}"]


def test_nifti_layout_is_x_y_t_with_y_up(tmp_path, frames):
    path = write_mri(tmp_path / "o.nii.gz", frames, pixel_mm=(2.0, 1.5), frame_s=0.05)
    img = nib.load(str(path))
    data = img.get_fdata()
    t, h, w = frames.shape
    assert data.shape == (w, h, t)
    # Row 0 (top of the image) is the highest Y index on disk, so viewers show the head upright.
    np.testing.assert_allclose(data[:, h - 1, 2], frames[2, 0, :])
    np.testing.assert_allclose(data[:, 0, 2], frames[2, h - 1, :])
    assert img.header.get_zooms() == pytest.approx((1.5, 2.0, 0.05))
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert nib.aff2axcodes(img.affine)[:2] == ("R", "A")


def test_reads_x_y_1_t_from_other_tools_with_ms_units(tmp_path):
    data = np.random.default_rng(1).random((8, 5, 1, 4)).astype(np.float32)  # (X, Y, 1, T)
    img = nib.Nifti1Image(data, np.diag([1.2, 1.3, 6.0, 1.0]))
    img.header.set_zooms((1.2, 1.3, 6.0, 40.0))
    img.header.set_xyzt_units("mm", "msec")
    nib.save(img, str(tmp_path / "four.nii"))
    seq = read_mri(tmp_path / "four.nii")
    assert seq.frames.shape == (4, 5, 8)
    np.testing.assert_array_equal(seq.frames[3, 0, :], data[:, 4, 0, 3])
    assert seq.frame_s == pytest.approx(0.04) and seq.pixel_mm == pytest.approx((1.3, 1.2))


def test_unknown_units_give_no_geometry(tmp_path, frames):
    path = write_mri(tmp_path / "u.nii.gz", frames, pixel_mm=None, frame_s=None)
    seq = read_mri(path)
    assert seq.pixel_mm is None and seq.frame_s is None and seq.fps is None


def test_npz_with_single_unnamed_array(tmp_path, frames):
    np.savez(tmp_path / "x.npz", frames[::-1])
    np.testing.assert_array_equal(read_mri(tmp_path / "x.npz").frames, frames[::-1])


def _nifti(tmp_path, name, data):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4)), str(tmp_path / name))
    return tmp_path / name


def test_refusals_name_file_and_problem(tmp_path):
    text = tmp_path / "notes.nii.gz"
    text.write_text("this is a text file, not NIfTI\n")
    with pytest.raises(InputError, match=r"notes\.nii\.gz: not a readable NIfTI file"):
        read_mri(text)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(np.random.default_rng(0).bytes(4000)))
    with pytest.raises(InputError, match=r"garbage\.nii\.gz: not a readable NIfTI file"):
        read_mri(garbage)
    single = _nifti(tmp_path, "single.nii.gz", np.ones((8, 8, 1)))
    with pytest.raises(InputError, match=r"single\.nii\.gz: only 1 frame"):
        read_mri(single)
    flat = _nifti(tmp_path, "slice.nii", np.ones((8, 8)))
    with pytest.raises(InputError, match=r"slice\.nii: expected a 2-D slice over time"):
        read_mri(flat)
    volume = _nifti(tmp_path, "vol.nii.gz", np.ones((8, 8, 5, 4)))
    with pytest.raises(InputError, match=r"vol\.nii\.gz: 4-D NIfTI .* 5 slices"):
        read_mri(volume)
    nan = np.ones((8, 8, 3))
    nan[1, 2, 0] = np.nan
    nan[0, 0, 1] = np.inf
    with pytest.raises(InputError, match=r"nan\.nii\.gz: image data contains 2 NaN or infinite"):
        read_mri(_nifti(tmp_path, "nan.nii.gz", nan))
    np.save(tmp_path / "empty.npy", np.zeros((0, 4, 4), dtype=np.float32))
    with pytest.raises(InputError, match=r"empty\.npy: empty image data"):
        read_mri(tmp_path / "empty.npy")
    np.savez(tmp_path / "two.npz", a=np.ones((3, 4, 4)), b=np.ones((3, 4, 4)))
    with pytest.raises(InputError, match=r"two\.npz: expected key 'frames'"):
        read_mri(tmp_path / "two.npz")
    (tmp_path / "zero.nii").write_bytes(b"")
    with pytest.raises(InputError, match=r"zero\.nii: empty file"):
        read_mri(tmp_path / "zero.nii")
    with pytest.raises(InputError, match=r"missing\.nii\.gz: file not found"):
        read_mri(tmp_path / "missing.nii.gz")
    with pytest.raises(InputError, match=r"seq\.mat: unknown MRI file type"):
        (tmp_path / "seq.mat").write_bytes(b"x")
        read_mri(tmp_path / "seq.mat")
