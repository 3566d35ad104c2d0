"""Audio inside video containers: read_audio/audio_info on .avi/.mp4, stream start times, and the
refusals (truncated video, video without an audio track). References: the AVI's PCM chunks parsed
by hand, the samples written into the container, and ffmpeg's own offset option."""

from __future__ import annotations

import struct
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from articulate.errors import InputError
from articulate.readers.audio import audio_info, read_audio, resample_audio
from articulate.readers.container import avi_total_frames, decode_audio, has_audio, stream_start_times
from articulate.readers.video import read_video, write_video


def _avi_pcm(path) -> tuple[np.ndarray, int, int]:
    """int16 samples of an AVI's audio stream (``##wb`` chunks), its rate and channel count, read
    with a RIFF walker independent of ffmpeg."""
    data = path.read_bytes()
    sr = channels = None
    out = []

    def walk(pos: int, end: int) -> None:
        nonlocal sr, channels
        while pos + 8 <= end:
            cid, size = struct.unpack("<4sI", data[pos:pos + 8])
            body = pos + 8
            if cid in (b"RIFF", b"LIST"):
                walk(body + 4, body + size)
            elif cid == b"strf" and size in (16, 18, 20) and channels is None:
                fmt, ch, rate = struct.unpack("<HHI", data[body:body + 8])
                if fmt == 1:  # WAVE_FORMAT_PCM: the audio stream's format
                    sr, channels = rate, ch
            elif cid[2:] == b"wb":
                out.append(np.frombuffer(data[body:body + size], dtype="<i2"))
            pos = body + size + (size & 1)

    walk(0, len(data))
    return np.concatenate(out), sr, channels


@pytest.mark.parametrize("name", ["Ultrax_TD_001", "Ultrax_TD_003"])
def test_read_audio_of_real_avi_equals_its_pcm_chunks(samples_dir, name):
    path = samples_dir / "ultrax-video" / f"{name}.avi"
    pcm, sr_ref, channels = _avi_pcm(path)
    assert (sr_ref, channels) == (22050, 1)
    wav, sr = read_audio(path)
    assert sr == 22050 and wav.dtype == np.float32 and wav.ndim == 1
    np.testing.assert_array_equal(wav, pcm.astype(np.float32) / 32768.0)  # exact: PCM decoded, not re-encoded
    info = audio_info(path)
    assert (info["sr"], info["channels"], info["frames"], info["subtype"]) == (22050, 1, pcm.size, "pcm_s16le")
    assert info["duration_s"] == pytest.approx(pcm.size / 22050)
    # the README's figure: audio and video durations agree within 5 ms
    frames, fps = read_video(path)
    assert abs(frames.shape[0] / fps - pcm.size / 22050) < 0.005
    resampled, sr16 = read_audio(path, sr=16000)
    assert sr16 == 16000
    np.testing.assert_allclose(resampled, resample_audio(pcm.astype(np.float32) / 32768.0, 22050, 16000), atol=1e-6)


def test_aac_track_of_an_mp4_and_stereo(tmp_path):
    sr = 16000
    t = np.arange(2 * sr) / sr
    left = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    right = (0.2 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    frames = np.zeros((20, 16, 16), np.uint8)
    path = write_video(tmp_path / "clip.mp4", frames, 10, audio=np.stack([left, right]), sr=sr)
    multi, got_sr = read_audio(path, mono=False)
    assert got_sr == sr and multi.shape == (2, 2 * sr)  # AAC priming removed by the container's edit list
    for got, ref in zip(multi, (left, right)):
        inner = slice(2000, -2000)  # AAC is lossy: compare away from the edges
        assert np.corrcoef(got[inner], ref[inner])[0, 1] > 0.999
    mono, _ = read_audio(path)
    np.testing.assert_allclose(mono, multi.mean(axis=0), atol=1e-7)
    assert audio_info(path)["subtype"] == "aac" and has_audio(path)


def _onset(wav: np.ndarray, sr: int) -> float:
    """Time (s) of the first sample whose magnitude exceeds half the peak."""
    return float(np.argmax(np.abs(wav) > 0.5 * np.abs(wav).max()) / sr)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_stream_start_times_place_the_sound_on_the_video_time_line(tmp_path, suffix):
    """A burst at 0.3 s of the audio, the audio stream delayed by 0.5 s in the container with
    ffmpeg's own -itsoffset: audio_start + burst position must be 0.8 s on the container's clock,
    whatever the container does with the AAC priming samples."""
    sr = 16000
    t = np.arange(sr) / sr
    audio = np.where((t >= 0.3) & (t < 0.35), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)
    path = write_video(tmp_path / "a.mp4", np.zeros((30, 16, 16), np.uint8), 30, audio=audio, sr=sr)
    starts = stream_start_times(path)
    assert starts["video"] == pytest.approx(0.0, abs=1e-6) and starts["audio"] == pytest.approx(0.0, abs=1e-6)
    wav, _ = read_audio(path)
    assert _onset(wav, sr) == pytest.approx(0.3, abs=0.003)
    delayed = tmp_path / f"delayed{suffix}"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-itsoffset", "0.5", "-i", str(path),
                    "-map", "0:v", "-map", "1:a", "-c", "copy", str(delayed)], check=True)
    starts = stream_start_times(delayed)
    assert starts["video"] == pytest.approx(0.0, abs=1e-3)
    wav, _ = read_audio(delayed)
    assert starts["audio"] + _onset(wav, sr) == pytest.approx(0.8, abs=0.003)
    silent = write_video(tmp_path / "silent.avi", np.zeros((5, 8, 8), np.uint8), 25)
    assert stream_start_times(silent)["audio"] is None and not has_audio(silent)


def test_refusals_name_the_file(samples_dir, tmp_path):
    real = samples_dir / "ultrax-video" / "Ultrax_TD_001.avi"
    assert avi_total_frames(real) == 674
    cut = tmp_path / "cut.avi"
    cut.write_bytes(real.read_bytes()[:700_000])
    with pytest.raises(InputError, match=r"cut\.avi: truncated video: the AVI header declares 674 frames but only \d+ decode"):
        read_video(cut)
    with pytest.raises(InputError, match=r"cut\.avi: the audio track holds no samples"):
        read_audio(cut)  # a non-interleaved AVI keeps its audio after the video: cut off entirely

    sr = 16000
    rng = np.random.default_rng(0)
    mp4 = write_video(tmp_path / "noisy.mp4", rng.integers(0, 255, (90, 64, 64)).astype(np.uint8), 30,
                      audio=(0.1 * rng.standard_normal(3 * sr)).astype(np.float32), sr=sr)
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut\.mp4: truncated video .*partial file"):
        read_video(cut_mp4)
    with pytest.raises(InputError, match=r"cut\.mp4: truncated video: the audio track ends early"):
        decode_audio(cut_mp4)

    silent = write_video(tmp_path / "silent.mp4", np.zeros((5, 8, 8), np.uint8), 25)
    with pytest.raises(InputError, match=r"silent\.mp4: video has no audio track"):
        read_audio(silent)
    fake = tmp_path / "fake.avi"
    fake.write_text("not a video at all")
    with pytest.raises(InputError, match=r"fake\.avi: not a readable video file"):
        read_audio(fake)
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.mkv: empty file"):
        read_audio(empty)
