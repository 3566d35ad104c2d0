"""Ultrasound tongue imaging in the UltraSuite / TaL / AAA export formats.

One utterance is a stem with sibling files:

- ``<stem>.ult``: raw uint8 scan lines, frames x NumVectors x PixPerVector, no header;
- ``<stem>.param`` (key=value) or ``<stem>US.txt`` (same keys, comma decimals from AAA on
  European-locale machines): scan geometry, frame rate, and when the first frame was taken;
- ``<stem>.wav``: the audio; ultrasound frame 0 is at ``TimeInSecsOfFirstFrame`` s of it;
- ``<stem>.txt``: line 1 the prompt, line 2 the date, line 3 (when present) the speaker/session.

- ``<stem>.TextGrid`` (AAA / Praat annotation, optional): its words tier is the transcript when
  there is no ``.txt`` prompt (see :mod:`articulate.readers.textgrid`).

``FanConverter`` (:mod:`articulate.readers.scan_conversion`, re-exported here) turns scan lines
(polar: line angle x depth) into the fan-shaped image a clinician sees.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from articulate.errors import InputError
from articulate.readers.audio import read_audio, write_audio
from articulate.readers.scan_conversion import FanConverter
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
    "read_prompt",
    "read_transcript",
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
# What each value may be (articulate.validate.number's bounds): a probe has at most a few thousand lines of a
# few thousand samples; the fan spans less than a half turn; the first frame lies within a day of the audio.
_BOUNDS: dict[str, dict] = {
    "NumVectors": {"low": 1, "high": 8192},
    "PixPerVector": {"low": 1, "high": 65536},
    "ZeroOffset": {"low": 0, "high": 1e6},
    "BitsPerPixel": {"low": 1, "high": 64},
    "Angle": {"low": 0, "high": math.pi, "low_open": True},
    "Kind": {},
    "PixelsPerMm": {"low": 0, "high": 1e6, "low_open": True},
    "FramesPerSec": None,  # articulate.validate.frame_rate: positive, finite, a warning when implausible
    "TimeInSecsOfFirstFrame": {"low": -86400, "high": 86400},
}
# Keys are matched case-, space- and underscore-insensitively ("Frames Per Sec", "frames_per_sec").
_NORMALISED = {re.sub(r"[\s_]", "", k).lower(): k for k in _KEYS}
_PARAM_SUFFIXES = (".param", "US.txt", "_US.txt")
_STEM_SUFFIXES = (".ult", ".param", ".wav", ".txt", ".mp4", ".avi", ".mov", ".mkv", ".textgrid")
_TEXTGRID_SUFFIXES = (".TextGrid", ".textgrid", ".TEXTGRID")


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
        if not (math.isfinite(self.fps) and self.fps > 0):  # NaN fails every comparison: check it explicitly
            raise ValueError(f"FramesPerSec must be a positive finite number, got {self.fps}")
        if not math.isfinite(self.time_first_frame):
            raise ValueError(f"TimeInSecsOfFirstFrame must be finite, got {self.time_first_frame}")

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
    """Read a ``.param`` (key=value) or AAA ``US.txt`` (same keys, comma decimals) file.

    Every value is checked (:mod:`articulate.validate`): finite, whole where it counts something, in range.
    A key given twice is used with its last value and a warning line."""
    from articulate import validate

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "parameter file not found")
    values: dict[str, object] = {}
    extra: dict[str, str] = {}
    seen: dict[str, int] = {}
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
        if canonical in seen:
            validate.warn(path, f"{canonical} is given twice (lines {seen[canonical]} and {lineno}): using line {lineno}")
        seen[canonical] = lineno
        try:
            number = _number(value)
        except ValueError:
            raise InputError(path, f"line {lineno}: {key}={value!r} is not a number") from None
        what = f"line {lineno}: {key}"
        if not math.isfinite(number):
            raise InputError(path, f"{what}={value!r} is not a finite number")
        if kind is int and number != int(number):
            raise InputError(path, f"line {lineno}: {key}={value!r} should be a whole number")
        if canonical == "FramesPerSec":
            number = validate.frame_rate(number, path, what)
        else:
            number = validate.number(number, what, integer=kind is int, source=path, **_BOUNDS[canonical])
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
    text_source: str | None = None  # "txt" (the prompt file), "textgrid" (its words) or None
    words: list = field(default_factory=list)  # TextGrid word intervals, times in the trimmed audio (s)

    @property
    def num_frames(self) -> int:
        return int(self.scanlines.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.params.fps


def utterance_files(stem_or_file: str | Path) -> dict[str, Path | None]:
    """The stem of an utterance and its sibling files (``None`` where absent).

    Accepts the stem itself or any of its files (``.ult``, ``.param``, ``US.txt``, ``.wav``, ``.txt``,
    ``.TextGrid``).
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
        "textgrid": first(*_TEXTGRID_SUFFIXES),
    }


def read_prompt(path: Path | None, default_speaker: str) -> tuple[str, str]:
    """(prompt, speaker) from an UltraSuite / AAA ``.txt``: line 1 prompt, line 3 speaker when present.

    AAA writes the participant as ``Name, ...``: the speaker is the part before the first comma
    (as SATKIT reads it).
    """
    if path is None:
        return "", default_speaker
    lines = [line.strip() for line in _decode_text(path).splitlines()]
    text = lines[0] if lines else ""
    speaker = lines[2].split(",")[0].strip() if len(lines) > 2 else ""
    return text, speaker or default_speaker


def read_transcript(
    files: dict, default_speaker: str, start: float | None = None, stop: float | None = None
) -> tuple[str, str, str | None, list]:
    """``(text, speaker, source, words)`` of an utterance from its ``.txt`` prompt, else its TextGrid.

    ``files`` is :func:`utterance_files`' dict. The prompt wins when its first line is not empty (in
    AAA exports, recognised by their ``US.txt``, without the prompt number AAA puts first);
    otherwise the TextGrid's words (:func:`articulate.readers.textgrid.textgrid_words`) overlapping
    ``[start, stop)`` s of the audio are the text. ``words`` are always the TextGrid's word
    intervals in that span (empty without a TextGrid); ``source`` is ``"txt"``, ``"textgrid"`` or None.
    """
    from articulate.readers.textgrid import read_textgrid, textgrid_words

    text, speaker = read_prompt(files.get("txt"), default_speaker)
    param = files.get("param")
    if param is not None and param.name.endswith("US.txt"):
        # AAA writes the prompt's number before it ("007   na"): the prompt is what follows.
        text = re.sub(r"^\d+\s{2,}(?=\S)", "", text)
    words: list = []
    if files.get("textgrid") is not None:
        words = textgrid_words(read_textgrid(files["textgrid"]), start, stop)
    if text:
        return text, speaker, "txt", words
    if words:
        return " ".join(w.text for w in words), speaker, "textgrid", words
    return "", speaker, None, words


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
    """Load ``.ult`` + ``.param`` + ``.wav`` (+ ``.txt`` / ``.TextGrid``) and trim both streams to their common span.

    The text is the ``.txt`` prompt, else the TextGrid's words in the kept span (:func:`read_transcript`).

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
    span = common_span(scan.shape[0], params.fps, params.time_first_frame, audio.shape[0], audio_sr)
    if span["frame_stop"] == 0:
        raise InputError(
            stem,
            f"ultrasound ({scan.shape[0]} frames at {params.fps:g} fps from {params.time_first_frame:g} s) and "
            f"audio ({audio.shape[0] / audio_sr:.3f} s) do not overlap",
        )
    t_start, t_stop = span["sample_start"] / audio_sr, span["sample_stop"] / audio_sr
    text, speaker, text_source, words = read_transcript(files, stem.parent.name, t_start, t_stop)
    words = [replace(w, xmin=max(w.xmin, t_start) - t_start, xmax=min(w.xmax, t_stop) - t_start) for w in words]
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
        text_source=text_source,
        words=words,
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
