from __future__ import annotations

import pytest

from articulate.utils.atomic import atomic_path


def test_atomic_path_renames_on_success(tmp_path):
    dest = tmp_path / "sub" / "out.nii.gz"
    with atomic_path(dest) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == dest.parent
        tmp.write_bytes(b"data")
    assert dest.read_bytes() == b"data"
    assert [p.name for p in dest.parent.iterdir()] == ["out.nii.gz"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.wav"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer failed")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_atomic_output_has_umask_permissions(tmp_path):
    import os

    dest = tmp_path / "out.npy"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (dest.stat().st_mode & 0o777) == (0o666 & ~umask)
