"""What is inside a video container (mp4 / avi / mov / mkv), through the ffmpeg binary of imageio-ffmpeg.

ffprobe is not shipped, so facts come from ffmpeg itself:

- :func:`probe`: the ``ffmpeg -i`` banner (container, duration, start, streams with codec, rate, size);
- :func:`stream_start_times`: the timestamp of the first decoded video frame and audio sample
  (``showinfo`` / ``ashowinfo`` with ``-copyts``, i.e. the container's own timestamps), so the two
  streams are placed on one time line;
- :func:`decode_audio`: the first audio track decoded to float PCM (any codec ffmpeg decodes:
  PCM, AAC, MP3, Opus ...), read back from a WAV stream on ffmpeg's stdout;
- :func:`avi_total_frames`: the frame count an AVI's main header declares, to catch cut-off files
  (ffmpeg decodes what is there without complaint).
"""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import numpy as np

from articulate.errors import InputError, require_file

__all__ = [
    "VIDEO_SUFFIXES", "ffmpeg_exe", "probe", "has_audio", "stream_start_times", "decode_audio",
    "avi_total_frames", "truncation_problem", "frame_times",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
# ffmpeg's words for a file that ends before its streams do (mov: "partial file", matroska:
# "File ended prematurely", others: "truncated" / "Truncating").
_TRUNCATED = re.compile(r"partial file|ended prematurely|truncat|unexpected end of file", re.IGNORECASE)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _clean(line: str) -> str:
    """An ffmpeg log line without its ``[demuxer @ 0x...]`` prefixes."""
    return re.sub(r"\[[^\]]*@ 0x[0-9a-fA-F]+\]\s*", "", line).strip()


def _last_line(text: str) -> str:
    lines = [_clean(line) for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _truncation_line(text: str) -> str | None:
    for line in text.splitlines():
        if _TRUNCATED.search(line):
            return _clean(line)
    return None


def probe(path: str | Path) -> dict:
    """Container facts from the ``ffmpeg -i`` banner.

    Returns ``{"format", "duration_s", "start_s", "streams": [{"type": "video"|"audio", "codec",
    ...}], "banner": the text}``; video streams carry ``width``, ``height``, ``fps``, audio streams
    ``sr`` and ``layout``.
    """
    path = Path(path)
    require_file(path)
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, errors="replace").stderr
    # The banner quotes the file name ("from 'x_fps=1000.mp4'"): facts are never read from it.
    text = text.replace(str(path), "<input>")
    fmt = re.search(r"Input #0, ([^,]+(?:,[^,\s]+)*), from", text)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    start = re.search(r"start: (-?[\d.]+)", text)
    streams = []
    for line in text.splitlines():
        m = re.search(r"Stream #\d+:(\d+)\S*: (Video|Audio): (\w+)(.*)", line)
        if not m:
            continue
        rest = m.group(4)
        s: dict = {"index": int(m.group(1)), "type": m.group(2).lower(), "codec": m.group(3)}
        if s["type"] == "video":
            size = re.search(r", (\d+)x(\d+)\b", rest)
            fps = re.search(r"([\d.]+) fps", rest)
            s.update(width=int(size.group(1)) if size else None, height=int(size.group(2)) if size else None,
                     fps=float(fps.group(1)) if fps else None)
        else:
            sr = re.search(r", (\d+) Hz, ([^,]+)", rest)
            s.update(sr=int(sr.group(1)) if sr else None, layout=sr.group(2).strip() if sr else None)
        streams.append(s)
    if not streams:
        problem = _last_line(text) if "Invalid data" in text or "No such file" in text else "no audio or video stream"
        raise InputError(path, f"not a readable video file ({problem})")
    return {
        "format": fmt.group(1) if fmt else None,
        "duration_s": (int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))) if duration else None,
        "start_s": float(start.group(1)) if start else 0.0,
        "streams": streams,
        "banner": text,
    }


def frame_times(path: str | Path) -> list[float] | None:
    """Presentation times (s, sorted) of the first video stream's frames, from its packets (no decoding:
    ``-c copy -f mkvtimestamp_v2``); None when ffmpeg cannot list them."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                           "-f", "mkvtimestamp_v2", "-"], capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        return None
    times = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                times.append(float(line) / 1000.0)
            except ValueError:
                return None
    return sorted(times)


def has_audio(path: str | Path) -> bool:
    """Whether the container holds an audio stream (header only; an unreadable file is ``False``)."""
    try:
        return any(s["type"] == "audio" for s in probe(path)["streams"])
    except InputError:
        return False


def _first_pts(path: Path, stream: str) -> float | None:
    filt = ["-vf", "showinfo", "-frames:v", "1"] if stream == "v" else ["-af", "ashowinfo", "-frames:a", "1"]
    text = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-copyts", "-i", str(path), "-map", f"0:{stream}:0",
         *filt, "-f", "null", "-"], capture_output=True, text=True, errors="replace").stderr
    m = re.search(r"\bn:\s*0\s+pts:\s*-?\d+\s+pts_time:\s*(-?[\d.]+(?:e[-+]?\d+)?)", text)
    return float(m.group(1)) if m else None


def stream_start_times(path: str | Path) -> dict:
    """Container time (s) of the first decoded video frame and the first decoded audio sample.

    ``{"video": s | None, "audio": s | None}`` (None: no such stream, or no timestamp). The first
    video frame lies ``video - audio`` s after audio sample 0 (AAC priming and muxing delays
    included), which is what :func:`articulate.readers.video_utterance.read_video_utterance` uses
    when no ``.param`` says otherwise.
    """
    path = Path(path)
    kinds = {s["type"] for s in probe(path)["streams"]}
    return {"video": _first_pts(path, "v") if "video" in kinds else None,
            "audio": _first_pts(path, "a") if "audio" in kinds else None}


def _parse_wav_stream(path: Path, raw: bytes) -> tuple[np.ndarray, int]:
    """A float32 WAV as ffmpeg streams it to a pipe (sizes unknown: 0xFFFFFFFF) -> ``[C, L]``, sr."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise InputError(path, "cannot decode the audio track (ffmpeg gave no audio)")
    pos, channels, sr = 12, None, None
    while pos + 8 <= len(raw):
        cid, size = struct.unpack("<4sI", raw[pos:pos + 8])
        if cid == b"fmt ":
            _, channels, sr = struct.unpack("<HHI", raw[pos + 8:pos + 16])
        elif cid == b"data":
            if not channels or not sr:
                break
            data = raw[pos + 8:]
            data = data[: len(data) // (4 * channels) * 4 * channels]
            return np.frombuffer(data, dtype="<f4").reshape(-1, channels).T.copy(), int(sr)
        pos += 8 + size + (size & 1)
    raise InputError(path, "cannot decode the audio track (malformed ffmpeg output)")


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The first audio track as float32 ``[C, L]`` at its own rate; ``(wav, sr)``.

    Refuses, naming the file: no audio track, undecodable or truncated audio, no samples, NaN.
    """
    path = Path(path)
    info = probe(path)
    if not any(s["type"] == "audio" for s in info["streams"]):
        raise InputError(path, "video has no audio track")
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
         "-c:a", "pcm_f32le", "-f", "wav", "-"], capture_output=True)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise InputError(path, f"cannot decode the audio track ({_last_line(err)})")
    cut = _truncation_line(err)
    if cut:
        raise InputError(path, f"truncated video: the audio track ends early ({cut}; file cut short?)")
    wav, sr = _parse_wav_stream(path, proc.stdout)
    if wav.shape[1] == 0:
        raise InputError(path, "the audio track holds no samples (file cut short?)")
    if not np.isfinite(wav).all():
        raise InputError(path, "audio contains NaN or infinite samples")
    from articulate import validate

    validate.sample_rate(sr, path, "audio track sample rate")
    validate.audio_samples(wav, path)
    return wav, sr


def avi_total_frames(path: str | Path) -> int | None:
    """``dwTotalFrames`` of an AVI's main header (``avih``), or None for other files.

    OpenDML files longer than one RIFF segment count only the first segment there, so the
    number is a lower bound, which is all a truncation check needs.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None
    i = head.find(b"avih")
    if i < 0 or len(head) < i + 28:
        return None
    return int(struct.unpack("<I", head[i + 24:i + 28])[0])


def truncation_problem(path: Path, decoded_frames: int, stderr: str) -> str | None:
    """Why a decoded video looks cut short (None when it does not)."""
    cut = _truncation_line(stderr)
    if cut:
        return f"truncated video ({cut}; file cut short?)"
    declared = avi_total_frames(path)
    if declared is not None and decoded_frames < declared - 1:
        return (f"truncated video: the AVI header declares {declared} frames but only {decoded_frames} decode "
                "(file cut short?)")
    return None
