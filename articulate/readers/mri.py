"""Dynamic (cine / tagged) MRI sequences: NIfTI, .npy and .npz in, ``[T, H, W]`` float32 out.

Orientation contract: NIfTI data is stored ``(X=W, Y=H, T)`` (or ``(X, Y, 1, T)``) with Y pointing
up, as viewers expect; the returned frames have row 0 at the top of the image, so the reader and
writer both flip the Y axis. ``write_mri`` followed by ``read_mri`` gives back the same array.

Intensities are returned as stored (no normalisation): the datamodules decide how to scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from articulate.errors import InputError, require_file
from articulate.utils.atomic import atomic_path

__all__ = ["MRISequence", "read_mri", "write_mri", "MRI_SUFFIXES"]

MRI_SUFFIXES = (".nii.gz", ".nii", ".npy", ".npz")

# NIfTI xyzt unit codes -> factor to millimetres / seconds.
_SPACE_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3}
_TIME_TO_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


@dataclass
class MRISequence:
    """An image sequence ``frames [T, H, W]`` float32; ``pixel_mm`` is (row, column) spacing in mm."""

    frames: np.ndarray
    pixel_mm: tuple[float, float] | None = None
    frame_s: float | None = None
    path: Path | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def fps(self) -> float | None:
        return None if not self.frame_s else 1.0 / self.frame_s


def mri_suffix(path: str | Path) -> str:
    """The MRI suffix of ``path`` ('.nii.gz', '.nii', '.npy', '.npz') or '' when it has none."""
    name = Path(path).name.lower()
    for suffix in MRI_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def _validate(path: Path, frames: np.ndarray) -> np.ndarray:
    if frames.size == 0:
        raise InputError(path, f"empty image data (shape {tuple(frames.shape)})")
    if frames.ndim != 3:
        raise InputError(path, f"expected an image sequence [T, H, W], got {frames.ndim}-D data of shape {tuple(frames.shape)}")
    if frames.shape[0] < 2:
        raise InputError(path, f"only {frames.shape[0]} frame: a sequence over time needs at least 2 frames")
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise InputError(path, f"frames of {frames.shape[1]}x{frames.shape[2]} pixels are not images")
    if not np.isfinite(frames).all():
        bad = int((~np.isfinite(frames)).sum())
        raise InputError(path, f"image data contains {bad} NaN or infinite values")
    return frames


def _f32(value: float) -> float:
    """A float32 header field as the decimal it was written from (1.87, not 1.8700000047683716)."""
    return float(f"{float(value):.7g}")


def _nifti_to_frames(path: Path, data: np.ndarray) -> np.ndarray:
    """NIfTI ``(X, Y, T)`` / ``(X, Y, 1, T)`` -> ``[T, H, W]`` with row 0 at the top."""
    shape = tuple(data.shape)
    if data.ndim == 4:
        if shape[2] != 1:
            raise InputError(
                path,
                f"4-D NIfTI of shape {shape} has {shape[2]} slices: expected one slice over time (X, Y, 1, T); "
                "extract the mid-sagittal slice first",
            )
        data = data[:, :, 0, :]
    elif data.ndim != 3:
        raise InputError(path, f"expected a 2-D slice over time (X, Y, T) or (X, Y, 1, T), got shape {shape}")
    return data.transpose(2, 1, 0)[:, ::-1, :]


def _read_nifti(path: Path) -> MRISequence:
    import nibabel as nib

    from articulate import validate

    try:
        img = nib.load(str(path))
        header = img.header
        validate.check_memory(4 * int(np.prod([int(d) for d in img.shape], dtype=np.float64)),
                              f"a NIfTI volume of shape {tuple(img.shape)}", path)  # before decoding it
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except InputError:
        raise
    except Exception as err:  # nibabel raises many types (ImageFileError, gzip/zlib/EOF errors, ...)
        detail = str(err).replace(f"File {path} ", "").replace(str(path), path.name)  # the path leads the message already
        detail = detail[3:] if detail.startswith("is ") else detail
        raise InputError(path, f"not a readable NIfTI file ({detail or type(err).__name__})") from None
    frames = _validate(path, np.ascontiguousarray(_nifti_to_frames(path, data), dtype=np.float32))
    zooms = header.get_zooms()
    space_unit, time_unit = header.get_xyzt_units()
    # Unknown spatial units mean nobody recorded the pixel size (converters such as dcm2niix set mm).
    pixel_mm = None
    if space_unit in _SPACE_TO_MM:
        to_mm = _SPACE_TO_MM[space_unit]
        pixel_mm = (_f32(zooms[1]) * to_mm, _f32(zooms[0]) * to_mm)
        if not all(np.isfinite(p) and p > 0 for p in pixel_mm):
            pixel_mm = None
    # Time step: the last axis' spacing, meaningful only when a time unit is recorded.
    frame_s = None
    if time_unit in _TIME_TO_S and len(zooms) >= 3 and np.isfinite(float(zooms[-1])) and float(zooms[-1]) > 0:
        frame_s = _f32(zooms[-1]) * _TIME_TO_S[time_unit]
    return MRISequence(frames, pixel_mm, frame_s, path)


def _read_numpy(path: Path, suffix: str) -> MRISequence:
    pixel_mm = frame_s = None
    with open(path, "rb") as f:
        magic = f.read(6)
    # Without this, numpy reads any other bytes as a pickle and suggests loading it unsafely.
    if suffix == ".npy" and magic != b"\x93NUMPY":
        raise InputError(path, "not a NumPy .npy file (no NumPy header)")
    if suffix == ".npz" and magic[:2] != b"PK":
        raise InputError(path, "not a NumPy .npz file (not a zip archive)")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "frames" in keys:
                    arr = z["frames"]
                else:
                    arrays = [k for k in keys if k not in ("pixel_mm", "frame_s")]
                    if len(arrays) != 1:
                        raise InputError(path, f"expected key 'frames' or a single array, found keys {keys}")
                    arr = z[arrays[0]]
                if "pixel_mm" in keys:
                    pixel_mm = tuple(float(v) for v in np.atleast_1d(z["pixel_mm"])[:2])
                if "frame_s" in keys:
                    frame_s = float(z["frame_s"]) or None
    except InputError:
        raise
    except Exception as err:
        raise InputError(path, f"not a readable {suffix} file ({type(err).__name__}: {err})") from None
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(path, f"expected real numeric image data, got dtype {arr.dtype}")
    from articulate import validate

    if pixel_mm is not None:  # header numbers of an .npz: finite and positive, or refused
        pixel_mm = tuple(validate.numbers(pixel_mm, "pixel_mm", low=0, low_open=True, high=1e4, source=path))
    if frame_s is not None:
        frame_s = validate.number(frame_s, "frame_s", low=0, low_open=True, high=3600, source=path)
    frames = _validate(path, np.ascontiguousarray(arr, dtype=np.float32))
    return MRISequence(frames, pixel_mm, frame_s, path)


def read_mri(path: str | Path) -> MRISequence:
    """Read an MRI sequence from ``.nii``, ``.nii.gz``, ``.npy`` or ``.npz`` (key ``frames`` or the only array)."""
    path = require_file(path, nonempty=False)  # the file type is named before its size
    suffix = mri_suffix(path)
    if not suffix:
        raise InputError(path, f"unknown MRI file type (expected one of {', '.join(MRI_SUFFIXES)})")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    if suffix in (".nii", ".nii.gz"):
        return _read_nifti(path)
    return _read_numpy(path, suffix)


def write_mri(
    path: str | Path,
    frames: np.ndarray,
    pixel_mm: tuple[float, float] | None = (1.87, 1.87),
    frame_s: float | None = None,
) -> Path:
    """Write ``frames [T, H, W]`` atomically; the format follows the suffix (.nii.gz/.nii/.npy/.npz).

    NIfTI files hold ``(X=W, Y=H, T)`` float32 with pixdim = (column mm, row mm, frame interval) and
    xyzt units mm / s; the time unit is left unknown when ``frame_s`` is None so the reader returns None.
    """
    path = Path(path)
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3:
        raise ValueError(f"write_mri expects frames [T, H, W], got shape {frames.shape}")
    suffix = mri_suffix(path)
    if not suffix:
        raise ValueError(f"write_mri: {path} must end with one of {MRI_SUFFIXES}")
    with atomic_path(path) as tmp:
        if suffix in (".nii", ".nii.gz"):
            import nibabel as nib

            data = np.ascontiguousarray(frames[:, ::-1, :].transpose(2, 1, 0))
            row_mm, col_mm = (1.0, 1.0) if pixel_mm is None else (float(pixel_mm[0]), float(pixel_mm[1]))
            affine = np.diag([col_mm, row_mm, 1.0, 1.0])
            img = nib.Nifti1Image(data, affine)
            img.header.set_zooms((col_mm, row_mm, float(frame_s) if frame_s else 1.0))
            img.header.set_xyzt_units("mm" if pixel_mm is not None else "unknown", "sec" if frame_s else "unknown")
            img.header.set_data_dtype(np.float32)
            nib.save(img, str(tmp))
        elif suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, frames)
        else:
            extra = {}
            if pixel_mm is not None:
                extra["pixel_mm"] = np.asarray(pixel_mm, dtype=np.float64)
            if frame_s:
                extra["frame_s"] = np.float64(frame_s)
            with open(tmp, "wb") as f:
                np.savez_compressed(f, frames=frames, **extra)
    return path
