"""Audio reader/writer: round trips, resampling against scipy, and refusals naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from articulate.errors import InputError
from articulate.readers.audio import audio_info, read_audio, write_audio


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_pcm16_round_trip_within_one_lsb(tmp_path):
    wav = _sine(440.0, 16000, 0.5)
    path = write_audio(tmp_path / "a.wav", wav, 16000)
    back, sr = read_audio(path)
    assert sr == 16000 and back.dtype == np.float32 and back.shape == wav.shape
    assert np.abs(back - wav).max() <= 1.0 / 32768 + 1e-7
    info = audio_info(path)
    assert info["subtype"] == "PCM_16" and info["frames"] == wav.size and info["channels"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_multichannel_flac_downmix_by_mean(tmp_path):
    left, right = _sine(300.0, 22050, 0.2), _sine(700.0, 22050, 0.2, amp=0.25)
    stereo = np.stack([left, right, -left])  # 3 channels, any count works
    path = write_audio(tmp_path / "s.flac", stereo, 22050, subtype="PCM_24")
    multi, sr = read_audio(path, mono=False)
    assert multi.shape == (3, left.size) and sr == 22050
    mono, _ = read_audio(path)
    np.testing.assert_allclose(mono, multi.mean(axis=0), atol=1e-7)
    np.testing.assert_allclose(multi[1], right, atol=2.0 / 2**23)


def test_resampling_matches_polyphase_reference(tmp_path):
    sr_in, sr_out = 48000, 16000
    wav = _sine(1000.0, sr_in, 1.0) + _sine(3100.0, sr_in, 1.0, amp=0.2)
    path = write_audio(tmp_path / "r.wav", wav, sr_in, subtype="FLOAT")
    out, sr = read_audio(path, sr=sr_out)
    ref = resample_poly(wav.astype(np.float64), 1, 3)
    assert sr == sr_out and abs(out.size - ref.size) <= 1
    n = min(out.size, ref.size)
    core = slice(200, n - 200)  # filters differ only in the edge transients
    assert np.abs(out[core] - ref[core]).max() < 2e-3
    spectrum = np.abs(np.fft.rfft(out[core]))
    freqs = np.fft.rfftfreq(out[core].size, 1 / sr_out)
    assert abs(freqs[spectrum.argmax()] - 1000.0) < 2.0


def test_write_clips_instead_of_wrapping(tmp_path):
    path = write_audio(tmp_path / "c.wav", np.array([1.5, -2.0, 0.25], dtype=np.float32), 8000)
    back, _ = read_audio(path)
    np.testing.assert_allclose(back, [32767 / 32768, -1.0, 0.25], atol=1e-6)


def test_write_refuses_nan_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_audio(tmp_path / "n.wav", np.array([0.0, np.nan], dtype=np.float32), 8000)
    assert list(tmp_path.iterdir()) == []


def test_real_tal_sample(samples_dir):
    path = samples_dir / "tal1" / "088_aud.wav"
    info = audio_info(path)
    assert info["sr"] == 48000 and info["channels"] == 1 and abs(info["duration_s"] - 5.477) < 0.01
    wav, sr = read_audio(path, sr=16000)
    assert sr == 16000 and abs(wav.size - info["frames"] / 3) <= 1
    assert np.abs(wav).max() <= 1.0 and np.abs(wav).max() > 0.01


def test_truncated_wav_is_refused(tmp_path):
    path = write_audio(tmp_path / "full.wav", _sine(440.0, 16000, 1.0), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError, match=r"cut\.wav: truncated WAV: header declares 32000 bytes .* 4956"):
        read_audio(cut)
    with pytest.raises(InputError, match="cut.wav"):
        audio_info(cut)


@pytest.mark.parametrize(
    "content, problem",
    [(b"RIFF\x10\x00\x00\x00WAVEjunkjunk", "not a readable audio file"), (b"hello, not audio at all", "not a readable audio file"), (b"", "empty file")],
)
def test_corrupt_files_are_refused(tmp_path, content, problem):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match=problem) as err:
        read_audio(path)
    assert err.value.path == path


def test_missing_empty_and_nan_audio(tmp_path):
    with pytest.raises(InputError, match="nope.wav: file not found"):
        read_audio(tmp_path / "nope.wav")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(InputError, match="empty.wav: audio file holds no samples"):
        read_audio(empty)
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="nan.wav: audio contains NaN"):
        read_audio(nan)


def test_every_reader_names_a_missing_folder_or_zero_byte_file(tmp_path):
    """The shared file check (``require_file``): audio, the container probe and MRI say the same three things."""
    from articulate.readers.container import probe
    from articulate.readers.mri import read_mri

    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "dir.wav").mkdir()
    for read, ext in ((read_audio, "wav"), (probe, "mp4"), (read_mri, "npy")):
        with pytest.raises(InputError, match=rf"nope\.{ext}: file not found"):
            read(tmp_path / f"nope.{ext}")
    with pytest.raises(InputError, match=r"dir\.wav: not a file"):
        read_audio(tmp_path / "dir.wav")
    for read, name in ((read_audio, "zero.wav"), (probe, "zero.mp4")):
        with pytest.raises(InputError, match=rf"{name}: empty file \(0 bytes\)"):
            read(tmp_path / name)
