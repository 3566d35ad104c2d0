"""Audio files in and out: any format soundfile reads, float32 in [-1, 1], sample rate alongside.

torchaudio.load/save need torchcodec, which is not available, so everything goes through soundfile
(libsndfile). Video files (``.mp4``, ``.avi``, ``.mov``, ``.mkv``) are read too: their first audio
track is decoded by ffmpeg (:func:`articulate.readers.container.decode_audio`; AAC, PCM, MP3 ...),
so every caller accepts a video with its sound inside. Resampling uses soxr (the high-quality
resampler librosa uses for ``soxr_hq``) with scipy's polyphase filter as fallback.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from articulate.errors import InputError, require_file
from articulate.utils.atomic import atomic_path

__all__ = ["read_audio", "write_audio", "audio_info", "resample_audio"]


def _check_wav_header(path: Path) -> None:
    """Refuse a RIFF/WAVE file whose ``data`` chunk claims more bytes than the file holds.

    libsndfile silently shortens such files to what is there, so a copy cut off mid-transfer
    would otherwise be read as a shorter, valid recording.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return  # not RIFF/WAVE (or RF64, whose sizes live in a ds64 chunk): soundfile judges it
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack(endian + "4sI", f.read(8))
            if chunk_id == b"data":
                available = size - pos - 8
                # 0 and 0xFFFFFFFF mean "length unknown" (streamed recordings): nothing to compare.
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise InputError(
                        path,
                        f"truncated WAV: header declares {chunk_size} bytes of audio but only "
                        f"{available} are present (file cut short?)",
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)


def _open_info(path: Path) -> sf._SoundFileInfo:
    """The header, its numbers checked: a sample rate (a warning when implausible), a channel count, and a
    size that fits in memory once decoded."""
    from articulate import validate

    require_file(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        raise InputError(path, f"not a readable audio file ({err})") from None
    if path.suffix.lower() in (".wav", ".wave"):
        _check_wav_header(path)
    validate.sample_rate(info.samplerate, path)
    validate.number(info.channels, "channel count in the header", integer=True, low=1, high=1024, source=path)
    validate.check_memory(4 * max(0, info.frames) * info.channels, f"decoding {info.frames} samples x {info.channels} channels", path)
    return info


def _is_video(path: Path) -> bool:
    from articulate.readers.container import VIDEO_SUFFIXES

    return path.suffix.lower() in VIDEO_SUFFIXES


def _container_info(path: Path) -> dict:
    from articulate.readers.container import decode_audio, probe

    require_file(path)
    info = probe(path)
    stream = next((s for s in info["streams"] if s["type"] == "audio"), None)
    wav, sr = decode_audio(path)  # exact sample count: the banner only gives the container's duration
    return {
        "path": str(path),
        "format": (info["format"] or "video").split(",")[0].upper(),
        "subtype": stream["codec"] if stream else "unknown",
        "sr": int(sr),
        "channels": int(wav.shape[0]),
        "frames": int(wav.shape[1]),
        "duration_s": wav.shape[1] / float(sr),
    }


def audio_info(path: str | Path) -> dict:
    """Format, subtype, sample rate, channels, frames and duration of an audio file (header only).

    For a video file: the container (``format``) and codec (``subtype``) of its first audio track;
    that track is decoded to count its samples exactly.
    """
    path = Path(path)
    if _is_video(path):
        return _container_info(path)
    info = _open_info(path)
    return {
        "path": str(path),
        "format": info.format,
        "subtype": info.subtype,
        "sr": int(info.samplerate),
        "channels": int(info.channels),
        "frames": int(info.frames),
        "duration_s": float(info.frames) / float(info.samplerate) if info.samplerate else 0.0,
    }


def resample_audio(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling of ``[L]`` or ``[C, L]`` float audio along the last axis."""
    if int(sr_in) == int(sr_out):
        return np.asarray(wav, dtype=np.float32)
    wav = np.asarray(wav, dtype=np.float32)
    try:
        import soxr

        # soxr works on [L] or [L, C]; 'HQ' is librosa's soxr_hq.
        out = soxr.resample(wav.T, sr_in, sr_out, quality="HQ").T
    except ImportError:  # pragma: no cover - soxr ships with librosa
        from scipy.signal import resample_poly

        ratio = Fraction(int(sr_out), int(sr_in))
        out = resample_poly(wav, ratio.numerator, ratio.denominator, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


def read_audio(path: str | Path, sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read an audio file (or the audio track of a video file) as float32 in [-1, 1].

    Returns ``(wav, sr)`` with ``wav`` shaped ``[L]`` when ``mono`` (channels averaged) or ``[C, L]``
    otherwise. When ``sr`` is given the audio is resampled to it.
    """
    path = Path(path)
    if _is_video(path):
        from articulate.readers.container import decode_audio

        require_file(path)
        wav, file_sr = decode_audio(path)  # [C, L]
    else:
        info = _open_info(path)
        if info.frames == 0:
            raise InputError(path, "audio file holds no samples")
        try:
            data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as err:
            raise InputError(path, f"cannot decode audio ({err})") from None
        if data.shape[0] == 0:
            raise InputError(path, "audio file holds no samples")
        if not np.isfinite(data).all():
            raise InputError(path, "audio contains NaN or infinite samples")
        from articulate import validate

        validate.audio_samples(data, path)  # float files far outside [-1, 1] (1e30) would turn into NaN later
        wav = data.T  # [C, L]
    if mono:
        wav = wav.mean(axis=0)
    if sr is not None and int(sr) != int(file_sr):
        from articulate import validate

        validate.check_memory(4 * wav.size * int(sr) / max(1, int(file_sr)), f"resampling to {int(sr)} Hz", path)
        wav = resample_audio(wav, int(file_sr), int(sr))
        file_sr = int(sr)
    return np.ascontiguousarray(wav, dtype=np.float32), int(file_sr)


def write_audio(path: str | Path, wav: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write ``[L]`` or ``[C, L]`` float audio atomically (16-bit PCM WAV by default).

    Integer subtypes clip to [-1, 1] first: libsndfile would otherwise wrap overflowing samples.
    """
    path = Path(path)
    if hasattr(wav, "detach"):  # a torch tensor
        wav = wav.detach().cpu().numpy()
    wav = np.asarray(wav)
    if wav.ndim not in (1, 2) or wav.shape[-1] == 0:
        raise ValueError(f"write_audio expects [L] or [C, L] audio with L > 0, got shape {wav.shape}")
    wav = wav.astype(np.float32, copy=False)
    if not np.isfinite(wav).all():
        raise ValueError(f"write_audio: audio for {path} contains NaN or infinite samples")
    if subtype.upper().startswith("PCM") or subtype.upper() in ("ULAW", "ALAW"):
        wav = np.clip(wav, -1.0, 1.0)
    data = wav if wav.ndim == 1 else wav.T  # soundfile wants [L, C]
    with atomic_path(path) as tmp:
        fmt = None if tmp.suffix[1:].upper() in sf.available_formats() else "WAV"  # no known suffix: WAV
        sf.write(str(tmp), data, int(sr), subtype=subtype, format=fmt)
    return path
