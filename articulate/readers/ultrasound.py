"""Ultrasound tongue imaging in the UltraSuite / TaL / AAA export formats.

One utterance is a stem with sibling files:

- ``<stem>.ult``: raw uint8 scan lines, frames x NumVectors x PixPerVector, no header;
- ``<stem>.param`` (key=value) or ``<stem>US.txt`` (same keys, comma decimals from AAA on
  European-locale machines): scan geometry, frame rate, and when the first frame was taken;
- ``<stem>.wav``: the audio; ultrasound frame 0 is at ``TimeInSecsOfFirstFrame`` s of it;
- ``<stem>.txt``: line 1 the prompt, line 2 the date, line 3 (when present) the speaker/session.

``FanConverter`` turns scan lines (polar: line angle x depth) into the fan-shaped image a
clinician sees, with a precomputed sparse interpolation map so thousands of frames are cheap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from articulate.errors import InputError
from articulate.readers.audio import read_audio, write_audio
from articulate.utils.atomic import atomic_path

__all__ = [
    "UltrasoundParams",
    "read_param",
    "write_param",
    "read_ult",
    "write_ult",
    "UltrasoundUtterance",
    "read_utterance",
    "write_utterance",
    "utterance_files",
    "common_span",
    "FanConverter",
]

# Canonical file keys, the dataclass field each fills, and its type.
_KEYS: dict[str, tuple[str, type]] = {
    "NumVectors": ("num_vectors", int),
    "PixPerVector": ("pix_per_vector", int),
    "ZeroOffset": ("zero_offset", float),
    "BitsPerPixel": ("bits_per_pixel", int),
    "Angle": ("angle", float),
    "Kind": ("kind", int),
    "PixelsPerMm": ("pixels_per_mm", float),
    "FramesPerSec": ("fps", float),
    "TimeInSecsOfFirstFrame": ("time_first_frame", float),
}
_REQUIRED = ("NumVectors", "PixPerVector", "Angle", "FramesPerSec")
# Keys are matched case-, space- and underscore-insensitively ("Frames Per Sec", "frames_per_sec").
_NORMALISED = {re.sub(r"[\s_]", "", k).lower(): k for k in _KEYS}
_PARAM_SUFFIXES = (".param", "US.txt", "_US.txt")
_STEM_SUFFIXES = (".ult", ".param", ".wav", ".txt", ".mp4", ".avi")


@dataclass
class UltrasoundParams:
    """Scan parameters of one recording (the fields of a ``.param`` file).

    ``angle`` is the angle between neighbouring scan lines in radians; ``zero_offset`` the depth, in
    samples, of the first sample of each line from the probe's virtual centre; ``pixels_per_mm``
    converts samples to mm; ``time_first_frame`` is where frame 0 sits in the audio (s).
    Keys of the file that are not listed here are kept verbatim in ``extra``.
    """

    num_vectors: int
    pix_per_vector: int
    zero_offset: float = 0.0
    bits_per_pixel: int = 8
    angle: float = 0.025
    kind: int = 0
    pixels_per_mm: float | None = None
    fps: float = 60.0
    time_first_frame: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_vectors < 1 or self.pix_per_vector < 1:
            raise ValueError(f"NumVectors and PixPerVector must be positive, got {self.num_vectors} x {self.pix_per_vector}")
        if self.fps <= 0:
            raise ValueError(f"FramesPerSec must be positive, got {self.fps}")

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame in a ``.ult`` file."""
        return self.num_vectors * self.pix_per_vector * self.bits_per_pixel // 8

    def to_dict(self) -> dict:
        out = {key: getattr(self, name) for key, (name, _) in _KEYS.items()}
        out.update(self.extra)
        return out


def _decode_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise InputError(path, "binary data where a text file was expected")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # AAA exports from Windows machines


def _number(text: str) -> float:
    text = text.strip()
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # comma decimal separator (AAA US.txt)
    return float(text)


def read_param(path: str | Path) -> UltrasoundParams:
    """Read a ``.param`` (key=value) or AAA ``US.txt`` (same keys, comma decimals) file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "parameter file not found")
    values: dict[str, object] = {}
    extra: dict[str, str] = {}
    for lineno, raw in enumerate(_decode_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        match = re.match(r"^([^=:\t]+?)\s*[=:\t]\s*(.*)$", line)
        if not match:
            raise InputError(path, f"line {lineno}: expected key=value, got {line[:60]!r}")
        key, value = match.group(1).strip(), match.group(2).strip()
        canonical = _NORMALISED.get(re.sub(r"[\s_]", "", key).lower())
        if canonical is None:
            extra[key] = value
            continue
        name, kind = _KEYS[canonical]
        try:
            number = _number(value)
        except ValueError:
            raise InputError(path, f"line {lineno}: {key}={value!r} is not a number") from None
        if kind is int:
            if number != int(number):
                raise InputError(path, f"line {lineno}: {key}={value!r} should be a whole number")
            number = int(number)
        values[name] = number
    missing = [k for k in _REQUIRED if _KEYS[k][0] not in values]
    if missing:
        raise InputError(path, f"not an ultrasound parameter file: missing {', '.join(missing)}")
    try:
        return UltrasoundParams(**values, extra=extra)  # type: ignore[arg-type]
    except ValueError as err:
        raise InputError(path, str(err)) from None


def _format(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def write_param(path: str | Path, params: UltrasoundParams) -> Path:
    """Write a ``.param`` file (key=value, ``.`` decimals) atomically; ``extra`` keys follow."""
    path = Path(path)
    lines = []
    for key, (name, _) in _KEYS.items():
        value = getattr(params, name)
        if value is not None:
            lines.append(f"{key}={_format(value)}")
    lines += [f"{k}={v}" for k, v in params.extra.items()]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_ult(path: str | Path, params: UltrasoundParams) -> np.ndarray:
    """Read raw scan lines as uint8 ``[F, NumVectors, PixPerVector]``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ultrasound file not found")
    if params.bits_per_pixel != 8:
        raise InputError(path, f"BitsPerPixel={params.bits_per_pixel} is not supported (only 8-bit scan lines)")
    size = path.stat().st_size
    frame = params.frame_bytes
    shape = f"{params.num_vectors} x {params.pix_per_vector}"
    if size < frame:
        raise InputError(
            path, f"{size} bytes is shorter than one frame ({frame} bytes = {shape} at 8 bits): wrong .param or truncated file"
        )
    if size % frame:
        raise InputError(
            path,
            f"{size} bytes is not a whole number of frames of {frame} bytes ({shape}): "
            f"{size // frame} frames + {size % frame} bytes; wrong .param or truncated file",
        )
    data = np.fromfile(path, dtype=np.uint8)
    return data.reshape(-1, params.num_vectors, params.pix_per_vector)


def _to_uint8(scanlines: np.ndarray) -> np.ndarray:
    """uint8 as is; other integers must lie in 0..255; floats are the framework's [0, 1] scale."""
    if hasattr(scanlines, "detach"):
        scanlines = scanlines.detach().cpu().numpy()
    arr = np.asarray(scanlines)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("integer scan lines must lie in 0..255")
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("scan lines contain NaN or infinite values")
        if arr.size and (arr.min() < -1e-6 or arr.max() > 1 + 1e-6):
            raise ValueError("float scan lines must be in [0, 1] (convert 0..255 data to uint8 first)")
        return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"unsupported scan line dtype {arr.dtype}")


def write_ult(path: str | Path, scanlines: np.ndarray) -> Path:
    """Write ``[F, V, P]`` (or one ``[V, P]`` frame) scan lines as a raw uint8 ``.ult`` file, atomically."""
    path = Path(path)
    arr = _to_uint8(scanlines)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"write_ult expects scan lines [F, V, P] with F > 0, got shape {arr.shape}")
    with atomic_path(path) as tmp:
        np.ascontiguousarray(arr).tofile(tmp)
    return path


# --------------------------------------------------------------------------------------------
# Utterances: ultrasound + audio + prompt, synchronised


@dataclass
class UltrasoundUtterance:
    """One utterance, already synchronised: scan line frame 0 starts at audio sample 0.

    ``params.time_first_frame`` is 0 after synchronisation; ``trim`` says what was cut to reach the
    common span (frames/samples dropped at the start and at the end, and the original offset).
    """

    scanlines: np.ndarray
    params: UltrasoundParams
    audio: np.ndarray
    sr: int
    text: str
    speaker: str
    stem: Path
    trim: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.scanlines.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.params.fps


def utterance_files(stem_or_file: str | Path) -> dict[str, Path | None]:
    """The stem of an utterance and its sibling files (``None`` where absent).

    Accepts the stem itself or any of its files (``.ult``, ``.param``, ``US.txt``, ``.wav``, ``.txt``).
    """
    p = Path(stem_or_file)
    name = p.name
    stem = p
    for suffix in ("_US.txt", "US.txt"):
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = p.with_name(name[: -len(suffix)])
            break
    else:
        if p.suffix.lower() in _STEM_SUFFIXES:
            stem = p.with_suffix("")

    def first(*candidates: str) -> Path | None:
        for c in candidates:
            q = stem.with_name(stem.name + c)
            if q.is_file():
                return q
        return None

    return {
        "stem": stem,
        "ult": first(".ult"),
        "param": first(*_PARAM_SUFFIXES),
        "wav": first(".wav"),
        "txt": first(".txt"),
    }


def read_prompt(path: Path | None, default_speaker: str) -> tuple[str, str]:
    """(prompt, speaker) from an UltraSuite ``.txt``: line 1 prompt, line 3 speaker when present."""
    if path is None:
        return "", default_speaker
    lines = [line.strip() for line in _decode_text(path).splitlines()]
    text = lines[0] if lines else ""
    speaker = lines[2] if len(lines) > 2 and lines[2] else default_speaker
    return text, speaker


def common_span(num_frames: int, fps: float, time_first_frame: float, num_samples: int, sr: int) -> dict:
    """Frames and samples of the span both streams cover.

    Frame k is shown from ``time_first_frame + k / fps`` for ``1 / fps`` s. A frame is kept when
    that whole interval lies inside the audio, so every kept frame has its audio; the audio is cut
    at the first kept frame's start and the last kept frame's end. Handles a negative offset
    (ultrasound started first) and audio shorter than the ultrasound.
    """
    eps = 1e-9
    audio_s = num_samples / sr
    k0 = max(0, math.ceil(-time_first_frame * fps - eps))
    k1 = min(num_frames, math.floor((audio_s - time_first_frame) * fps + eps))
    if k1 <= k0:
        return {"frame_start": 0, "frame_stop": 0, "sample_start": 0, "sample_stop": 0}
    s0 = min(num_samples, max(0, round((time_first_frame + k0 / fps) * sr)))
    s1 = min(num_samples, max(s0, round((time_first_frame + k1 / fps) * sr)))
    return {"frame_start": k0, "frame_stop": k1, "sample_start": s0, "sample_stop": s1}


def read_utterance(stem_or_file: str | Path, sr: int | None = None, channel: int | None = None) -> UltrasoundUtterance:
    """Load ``.ult`` + ``.param`` + ``.wav`` (+ ``.txt``) and trim both streams to their common span.

    ``channel`` picks one channel of a multi-channel WAV instead of averaging them (AAA recordings
    often carry the ultrasound sync pulses in the second channel: use ``channel=0`` there).
    """
    files = utterance_files(stem_or_file)
    stem = files["stem"]
    assert isinstance(stem, Path)
    if files["param"] is None:
        raise InputError(stem, f"no scan parameter file ({stem.name}.param or {stem.name}US.txt)")
    if files["ult"] is None:
        raise InputError(stem, f"no ultrasound file {stem.name}.ult")
    if files["wav"] is None:
        raise InputError(stem, f"no audio file {stem.name}.wav")
    params = read_param(files["param"])
    scan = read_ult(files["ult"], params)
    if channel is None:
        audio, audio_sr = read_audio(files["wav"], sr=sr)
    else:
        multi, audio_sr = read_audio(files["wav"], sr=sr, mono=False)
        if not -multi.shape[0] <= channel < multi.shape[0]:
            raise InputError(files["wav"], f"has {multi.shape[0]} channel(s); channel {channel} does not exist")
        audio = np.ascontiguousarray(multi[channel])
    text, speaker = read_prompt(files["txt"], stem.parent.name)
    span = common_span(scan.shape[0], params.fps, params.time_first_frame, audio.shape[0], audio_sr)
    if span["frame_stop"] == 0:
        raise InputError(
            stem,
            f"ultrasound ({scan.shape[0]} frames at {params.fps:g} fps from {params.time_first_frame:g} s) and "
            f"audio ({audio.shape[0] / audio_sr:.3f} s) do not overlap",
        )
    trim = {
        "frames_dropped_start": span["frame_start"],
        "frames_dropped_end": scan.shape[0] - span["frame_stop"],
        "samples_dropped_start": span["sample_start"],
        "samples_dropped_end": audio.shape[0] - span["sample_stop"],
        "original_frames": int(scan.shape[0]),
        "original_samples": int(audio.shape[0]),
        "original_time_first_frame": params.time_first_frame,
    }
    return UltrasoundUtterance(
        scanlines=scan[span["frame_start"] : span["frame_stop"]],
        params=replace(params, time_first_frame=0.0, extra=dict(params.extra)),
        audio=audio[span["sample_start"] : span["sample_stop"]],
        sr=audio_sr,
        text=text,
        speaker=speaker,
        stem=stem,
        trim=trim,
    )


def write_utterance(
    stem: str | Path,
    scanlines: np.ndarray,
    params: UltrasoundParams,
    audio: np.ndarray,
    sr: int,
    text: str,
    speaker: str | None = None,
    date: str | None = None,
) -> Path:
    """Write ``<stem>.ult/.param/.wav/.txt`` (each atomically) in the UltraSuite layout.

    The ``.txt`` holds the prompt, the date (empty unless given) and the speaker, one per line.
    """
    stem = Path(stem)
    arr = _to_uint8(scanlines)
    if arr.ndim != 3 or arr.shape[1:] != (params.num_vectors, params.pix_per_vector):
        raise ValueError(
            f"scan lines of shape {arr.shape} do not match params ({params.num_vectors} x {params.pix_per_vector})"
        )
    if params.bits_per_pixel != 8:
        raise ValueError("only 8-bit scan lines can be written")
    write_ult(stem.with_name(stem.name + ".ult"), arr)
    write_param(stem.with_name(stem.name + ".param"), params)
    write_audio(stem.with_name(stem.name + ".wav"), audio, sr)
    lines = [text.replace("\n", " "), date or ""]
    if speaker:
        lines.append(speaker)
    with atomic_path(stem.with_name(stem.name + ".txt")) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return stem


# --------------------------------------------------------------------------------------------
# Polar scan lines -> Cartesian fan image


class FanConverter:
    """Precomputed polar -> Cartesian map from scan lines ``[.., V, P]`` to fan images ``[.., H, W]``.

    Geometry: scan line ``i`` lies at angle ``(i - floor(V/2)) * Angle`` from the probe axis (line
    index grows to the right of the image), sample ``j`` at radius ``ZeroOffset + j`` samples from
    the probe's virtual centre. The probe sits at the top centre and the fan opens downward. The
    output covers the fan's bounding box (symmetric about the probe axis, fan at the top, spare
    rows below) at one scale for both axes, so shapes are not distorted; ``include_apex=True``
    extends it up to the probe centre.

    ``order`` 0 (nearest) and 1 (bilinear) use a sparse weight matrix (numpy) or ``grid_sample``
    (torch, any device, batched); higher spline orders (the UltraSuite tools use 2) go through
    ``scipy.ndimage.map_coordinates`` frame by frame. Pixels outside the fan are 0; ``mask`` marks
    the pixels inside it. ``apex`` is the probe centre in output pixel coordinates (row, col),
    ``samples_per_pixel`` the scale (divide by ``params.pixels_per_mm`` for mm).
    """

    def __init__(
        self,
        params: UltrasoundParams,
        size: tuple[int, int] = (128, 128),
        order: int = 1,
        include_apex: bool = False,
    ) -> None:
        height, width = int(size[0]), int(size[1])
        if height < 2 or width < 2:
            raise ValueError(f"fan image size must be at least 2x2, got {size}")
        if order < 0 or order > 5:
            raise ValueError(f"order must be 0..5, got {order}")
        num_v, num_p = params.num_vectors, params.pix_per_vector
        if num_v < 2 or num_p < 2:
            raise ValueError("a fan needs at least 2 scan lines of at least 2 samples")
        if params.angle <= 0:
            raise ValueError(f"Angle must be positive to draw a fan, got {params.angle}")
        self.params, self.size, self.order = params, (height, width), order
        self.num_vectors, self.pix_per_vector = num_v, num_p
        centre = num_v // 2
        r0 = float(params.zero_offset)
        r1 = r0 + num_p - 1
        th0, th1 = -centre * params.angle, (num_v - 1 - centre) * params.angle

        # Bounding box of the fan, from its outline (dense arcs: exact at the ends, and the arc's
        # extreme where it bulges past the ends, e.g. the bottom at theta = 0).
        theta = np.linspace(th0, th1, 2049)
        outline_r = np.concatenate([np.full_like(theta, r0), np.full_like(theta, r1)])
        outline_t = np.concatenate([theta, theta])
        xs, ys = outline_r * np.sin(outline_t), outline_r * np.cos(outline_t)
        half_w = float(np.abs(xs).max())
        y_min, y_max = float(ys.min()), float(ys.max())
        if include_apex:
            y_min = min(y_min, 0.0)
        scale = max(2 * half_w / (width - 1), (y_max - y_min) / (height - 1))
        y_top = y_min  # top-aligned: spare rows, if any, go below the fan
        self.samples_per_pixel = scale
        self.apex = (-y_top / scale, 0.5 * (width - 1))
        self.mm_per_pixel = scale / params.pixels_per_mm if params.pixels_per_mm else None

        rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
        x = (cols - self.apex[1]) * scale
        y = y_top + rows * scale
        radius = np.hypot(x, y)
        line = np.arctan2(x, y) / params.angle + centre  # fractional scan line index
        sample = radius - r0  # fractional sample index
        tol = 1e-6
        self.mask = (line >= -tol) & (line <= num_v - 1 + tol) & (sample >= -tol) & (sample <= num_p - 1 + tol)
        # Polar coordinates of every output pixel (outside ones too) for spline orders and tests.
        self.line_coords = np.clip(line, 0, num_v - 1)
        self.sample_coords = np.clip(sample, 0, num_p - 1)
        self._matrix = self._build_matrix() if order <= 1 else None
        self._grids: dict = {}

    def _build_matrix(self):
        from scipy import sparse

        height, width = self.size
        num_p = self.pix_per_vector
        pix = np.flatnonzero(self.mask)
        li = self.line_coords.ravel()[pix]
        sj = self.sample_coords.ravel()[pix]
        if self.order == 0:
            rows, cols = pix, np.round(li).astype(np.int64) * num_p + np.round(sj).astype(np.int64)
            weights = np.ones(pix.size)
        else:
            i0 = np.clip(np.floor(li).astype(np.int64), 0, self.num_vectors - 2)
            j0 = np.clip(np.floor(sj).astype(np.int64), 0, num_p - 2)
            fi, fj = li - i0, sj - j0
            rows = np.tile(pix, 4)
            cols = np.concatenate([i0 * num_p + j0, i0 * num_p + j0 + 1, (i0 + 1) * num_p + j0, (i0 + 1) * num_p + j0 + 1])
            weights = np.concatenate([(1 - fi) * (1 - fj), (1 - fi) * fj, fi * (1 - fj), fi * fj])
        shape = (height * width, self.num_vectors * num_p)
        return sparse.csr_matrix((weights.astype(np.float32), (rows, cols)), shape=shape)

    def __call__(self, scanlines, chunk: int = 256):
        if hasattr(scanlines, "detach"):
            return self._torch(scanlines)
        arr = np.asarray(scanlines)
        if arr.shape[-2:] != (self.num_vectors, self.pix_per_vector):
            raise ValueError(f"expected scan lines [..., {self.num_vectors}, {self.pix_per_vector}], got {arr.shape}")
        lead = arr.shape[:-2]
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
        flat = arr.reshape(-1, self.num_vectors * self.pix_per_vector)
        out = np.zeros((flat.shape[0], self.size[0] * self.size[1]), dtype=dtype)
        if self._matrix is not None:
            for start in range(0, flat.shape[0], chunk):
                block = flat[start : start + chunk].astype(np.float32, copy=False)
                out[start : start + chunk] = (self._matrix @ block.T).T
        else:
            from scipy.ndimage import map_coordinates

            pix = np.flatnonzero(self.mask)
            coords = np.stack([self.line_coords.ravel()[pix], self.sample_coords.ravel()[pix]])
            for n in range(flat.shape[0]):
                frame = flat[n].reshape(self.num_vectors, self.pix_per_vector).astype(np.float64)
                out[n, pix] = map_coordinates(frame, coords, order=self.order, mode="nearest")
        return out.reshape(*lead, *self.size)

    def _torch(self, scanlines):
        import torch
        import torch.nn.functional as F

        if tuple(scanlines.shape[-2:]) != (self.num_vectors, self.pix_per_vector):
            raise ValueError(f"expected scan lines [..., {self.num_vectors}, {self.pix_per_vector}], got {tuple(scanlines.shape)}")
        if self.order > 1:  # splines have no torch equivalent: compute on CPU, return on the input's device
            out = self(scanlines.detach().cpu().numpy().astype(np.float32))
            dtype = scanlines.dtype if scanlines.is_floating_point() else torch.float32
            return torch.from_numpy(out).to(device=scanlines.device, dtype=dtype)
        lead = scanlines.shape[:-2]
        x = scanlines if scanlines.is_floating_point() else scanlines.float()
        x = x.reshape(-1, 1, self.num_vectors, self.pix_per_vector)
        key = (x.device, x.dtype)
        if key not in self._grids:
            # grid_sample wants (x=sample, y=line) in [-1, 1] with align_corners=True (corner = centre of
            # the end samples); pixels outside the fan point far outside so zero padding blanks them.
            gx = 2 * self.sample_coords / (self.pix_per_vector - 1) - 1
            gy = 2 * self.line_coords / (self.num_vectors - 1) - 1
            grid = np.stack([gx, gy], axis=-1)
            grid[~self.mask] = -4.0
            self._grids[key] = (
                torch.as_tensor(grid, dtype=x.dtype, device=x.device)[None],
                torch.as_tensor(self.mask, dtype=x.dtype, device=x.device),
            )
        grid, mask = self._grids[key]
        mode = "nearest" if self.order == 0 else "bilinear"
        out = F.grid_sample(x, grid.expand(x.shape[0], -1, -1, -1), mode=mode, padding_mode="zeros", align_corners=True)
        return (out[:, 0] * mask).reshape(*lead, *self.size)
