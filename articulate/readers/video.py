"""Grayscale video in and out through the ffmpeg binary that imageio-ffmpeg ships.

Reading asks ffmpeg for 8-bit gray directly (no RGB round trip). Writing encodes H.264 (yuv420p,
the pixel format every player accepts, which needs even width and height: frames are padded with
black at the bottom/right) and muxes the audio, when given, as AAC in the same ffmpeg call.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from articulate.errors import InputError
from articulate.readers.container import VIDEO_SUFFIXES, ffmpeg_exe, probe, truncation_problem
from articulate.utils.atomic import atomic_path, scratch_dir

__all__ = ["read_video", "write_video", "video_info", "VIDEO_SUFFIXES"]


def _ffmpeg() -> str:
    return ffmpeg_exe()


def video_info(path: str | Path) -> dict:
    """Container facts from ``ffmpeg -i`` (ffprobe is not shipped): fps, size, duration, streams."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    info = probe(path)
    video = next((s for s in info["streams"] if s["type"] == "video"), None)
    if video is None or video["width"] is None:
        raise InputError(path, "not a readable video file (ffmpeg finds no video stream)")
    audio = next((s for s in info["streams"] if s["type"] == "audio"), None)
    fps_value = _frame_rate(path, video["fps"], info["banner"])
    timing = _timing(path, fps_value)
    return {
        "path": str(path),
        "video_codec": video["codec"],
        "width": int(video["width"]),
        "height": int(video["height"]),
        "fps": fps_value,
        "duration_s": info["duration_s"],
        "audio_codec": audio["codec"] if audio else None,
        "audio_sr": audio["sr"] if audio else None,
        "container": info["format"],
        **timing,
    }


# write_video stores the exact rate as the container's comment "articulate_fps=<rate>" (its own metadata line)
_EXACT_FPS = re.compile(r"^\s*comment\s*:\s*articulate_fps=([0-9.eE+-]+)\s*$", re.MULTILINE)


def _frame_rate(path: Path, stream_fps: float | None, banner: str) -> float:
    """The video stream's frame rate: from its stream line (ffmpeg rounds it to 2 decimals), or the exact rate
    write_video stored in the metadata when it agrees with the stream's; checked (:func:`validate.frame_rate`)."""
    from articulate import validate

    if stream_fps is None:
        raise InputError(path, "video has no frame rate (ffmpeg reports none for its video stream)")
    fps = validate.frame_rate(stream_fps, path, "video frame rate")
    exact = _EXACT_FPS.search(banner)
    if exact:
        try:
            value = float(exact.group(1))
        except ValueError:
            value = float("nan")
        if value > 0 and abs(value - fps) <= 0.01 * fps + 0.01:  # NaN fails too: then the stream's rate stands
            fps = value
    return fps


def _timing(path: Path, fps: float) -> dict:
    """Whether the frames are evenly spaced; a variable frame rate is read (frames as stored) with a warning."""
    from articulate import validate
    from articulate.readers.container import frame_times

    times = frame_times(path)
    if not times or len(times) < 3:
        return {"variable_frame_rate": None}
    gaps = np.diff(np.asarray(times)) * 1000.0  # ms, rounded to 1 ms by the listing
    lo, hi, med = float(gaps.min()), float(gaps.max()), float(np.median(gaps))
    variable = hi - lo > max(2.0, 0.1 * med)
    if variable:
        validate.warn(path, f"variable frame rate: frames are {lo:g}-{hi:g} ms apart (average {fps:g} fps); they are "
                            "read as stored, and a constant rate is assumed when they are timed")
    return {"variable_frame_rate": bool(variable), "frame_interval_ms": [round(lo, 3), round(hi, 3)]}


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode every frame as uint8 gray ``[F, H, W]``; returns ``(frames, fps)``.

    Frames come as the file stores them (``-fps_mode passthrough``: none duplicated or dropped to
    fit a constant rate). A file cut short (ffmpeg reports a partial file, or fewer frames decode
    than an AVI header declares) is refused rather than read as a shorter recording.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    info = video_info(path)
    width, height = info["width"], info["height"]
    from articulate import validate

    if info["duration_s"]:  # decoded frames are held in memory: refused before ffmpeg fills it
        frames_est = int(info["duration_s"] * info["fps"] * 1.05) + 2
        validate.check_memory(2 * frames_est * width * height, f"decoding about {frames_est} frames of {width}x{height}", path)
    proc = subprocess.run(
        [_ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-an", "-sn", "-dn",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise InputError(path, f"not a readable video file ({err.strip().splitlines()[-1] if err.strip() else 'ffmpeg failed'})")
    frame_bytes = width * height
    count = len(proc.stdout) // frame_bytes
    if count == 0:
        raise InputError(path, "video holds no frames")
    problem = truncation_problem(path, count, err)
    if problem:
        raise InputError(path, problem)
    frames = np.frombuffer(proc.stdout, dtype=np.uint8, count=count * frame_bytes).reshape(count, height, width)
    return frames.copy(), float(info["fps"])


def _frames_to_uint8(frames) -> np.ndarray:
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    arr = np.asarray(frames)
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"write_video expects gray frames [F, H, W] with F > 0, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):  # framework images are [0, 1]
        if not np.isfinite(arr).all():
            raise ValueError("video frames contain NaN or infinite values")
        return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    crf: int = 18,
) -> Path:
    """Write gray ``[F, H, W]`` frames (uint8, or float in [0, 1]) as H.264 MP4, atomically.

    ``audio`` (``[L]`` or ``[C, L]`` float at ``sr``) is muxed as AAC. ``crf`` 18 is visually
    lossless for ultrasound; lower it for exact-looking output, raise it for smaller files.
    """
    import imageio_ffmpeg

    from articulate.readers.audio import write_audio

    path = Path(path)
    arr = _frames_to_uint8(frames)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive and finite, got {fps}")
    if audio is not None and not sr:
        raise ValueError("write_video: audio given without its sample rate sr")
    _, height, width = arr.shape
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w)))
    # ffmpeg prints frame rates rounded to 2 decimals (81.512 -> 81.51), which drifts over long
    # recordings, so the exact rate travels in the container's metadata too.
    output_params = ["-crf", str(int(crf)), "-metadata", f"comment=articulate_fps={float(fps)!r}"]
    if path.suffix.lower() in (".mp4", ".mov"):
        output_params += ["-movflags", "+faststart"]
    with atomic_path(path) as tmp, scratch_dir(path.parent) as scratch:
        audio_path = None
        if audio is not None:
            audio_path = str(write_audio(Path(scratch) / "audio.wav", audio, int(sr)))
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            size=(arr.shape[2], arr.shape[1]),
            pix_fmt_in="gray",
            pix_fmt_out="yuv420p",
            fps=float(fps),
            codec="libx264",
            quality=None,
            macro_block_size=1,
            output_params=output_params,
            audio_path=audio_path,
            audio_codec="aac" if audio_path else None,
            ffmpeg_log_level="error",
        )
        writer.send(None)  # start ffmpeg
        for frame in arr:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
    return path
