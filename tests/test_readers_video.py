"""Video: H.264 round trip (frames, fps, pixel values), padding to even size, the AAC audio track."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from articulate.errors import InputError
from articulate.readers.video import read_video, video_info, write_video


def _moving_bar(frames: int = 40, height: int = 63, width: int = 81) -> np.ndarray:
    out = np.empty((frames, height, width), np.uint8)
    out[:] = np.linspace(0, 255, width).astype(np.uint8)[None, None]
    for i in range(frames):
        out[i, 10:25, i : i + 12] = 255
    return out


def _ffmpeg_streams(path) -> str:
    """The stream lines `ffmpeg -i` prints (ffprobe is not shipped with imageio-ffmpeg)."""
    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return "\n".join(line for line in err.splitlines() if "Stream #" in line)


def test_round_trip_with_audio_track(tmp_path):
    frames = _moving_bar()
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)
    path = write_video(tmp_path / "clip.mp4", frames, 81.512, audio=audio, sr=16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no temp files left
    back, fps = read_video(path)
    assert fps == pytest.approx(81.512, abs=1e-9)
    assert back.dtype == np.uint8 and back.shape == (40, 64, 82)  # padded to even size
    err = np.abs(back[:, :63, :81].astype(np.int16) - frames)
    assert err.mean() < 2.0 and np.percentile(err, 99) < 12
    assert (back[:, 63, :] < 8).all() and (back[:, :, 81] < 40).all()  # black padding (chroma-free edge blur)
    streams = _ffmpeg_streams(path)
    assert "Video: h264" in streams and "Audio: aac" in streams and "16000 Hz" in streams
    info = video_info(path)
    assert info["audio_codec"] == "aac" and (info["width"], info["height"]) == (82, 64)


def test_float_frames_avi_without_audio(tmp_path):
    frames = _moving_bar(12, 32, 48).astype(np.float32) / 255.0
    path = write_video(tmp_path / "clip.avi", frames, 60)
    back, fps = read_video(path)
    assert back.shape == (12, 32, 48) and fps == pytest.approx(60.0)
    assert np.abs(back.astype(np.float32) / 255 - frames).mean() < 0.01
    assert "Audio" not in _ffmpeg_streams(path)


def test_refusals(tmp_path):
    with pytest.raises(InputError, match="none.mp4: file not found"):
        read_video(tmp_path / "none.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(InputError, match=r"bad\.mp4: not a readable video file"):
        read_video(bad)
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8), 30, audio=np.zeros(100, np.float32))
    assert not (tmp_path / "x.mp4").exists()
