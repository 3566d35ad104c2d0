"""Resampling: frequencies preserved, aliases rejected, numpy and torch agree, close to librosa (soxr)."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from articulate.signal.resample import resample

RATES = [(22050, 16000), (16000, 22050), (48000, 22050), (44100, 16000), (8000, 16000)]


def tone(f: float, sr: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.sin(2 * np.pi * f * t)


def fit_tone(y: np.ndarray, sr: int, f: float) -> tuple[float, float]:
    """Least-squares fit of a sine at ``f`` Hz to the middle of ``y``: (amplitude, relative residual)."""
    n = np.arange(len(y))[len(y) // 8: -len(y) // 8]
    basis = np.stack([np.sin(2 * np.pi * f * n / sr), np.cos(2 * np.pi * f * n / sr)], axis=1)
    seg = y[n]
    coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
    resid = np.linalg.norm(seg - basis @ coef) / max(np.linalg.norm(seg), 1e-30)
    return float(np.hypot(*coef)), float(resid)


def bandlimited(sr_in: int, sr_out: int, n: int, seed: int = 0) -> np.ndarray:
    """Random tones below 0.45 x the lower sample rate (inside both filters' pass bands)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr_in
    freqs = rng.uniform(20, 0.45 * min(sr_in, sr_out), 20)
    return sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in freqs) / 10


@pytest.mark.parametrize("sr_in, sr_out", RATES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_tone_frequency_and_level_preserved(sr_in, sr_out, backend):
    f = 0.3 * min(sr_in, sr_out)
    x = tone(f, sr_in)
    y = resample(torch.from_numpy(x) if backend == "torch" else x, sr_in, sr_out)
    y = y.numpy() if backend == "torch" else y
    assert y.shape == (math.ceil(len(x) * sr_out / sr_in),)
    amp, resid = fit_tone(y, sr_out, f)
    assert abs(amp - 1) < 1e-3 and resid < 1e-3, (amp, resid)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_tone_above_new_nyquist_is_removed(backend):
    x = tone(8600.0, 22050)  # would alias to 7400 Hz at 16 kHz
    y = resample(torch.from_numpy(x) if backend == "torch" else x, 22050, 16000)
    y = y.numpy() if backend == "torch" else y
    amp, _ = fit_tone(y, 16000, 16000 - 8600.0)
    assert 20 * np.log10(amp + 1e-30) < -100 and np.abs(y[len(y) // 8: -len(y) // 8]).max() < 1e-4


def test_numpy_and_torch_agree():
    for sr_in, sr_out in RATES:
        x = np.stack([bandlimited(sr_in, sr_out, 22050, seed) for seed in (0, 1)])
        a = resample(x, sr_in, sr_out)
        b = resample(torch.from_numpy(x), sr_in, sr_out).numpy()
        assert a.shape == b.shape == (2, math.ceil(22050 * sr_out / sr_in))
        # Same Kaiser sinc, two implementations (measured <= 3e-5 relative, 8 -> 16 kHz the largest).
        assert np.abs(a - b).max() < 1e-4 * np.abs(a).max(), (sr_in, sr_out)


def test_close_to_librosa_soxr_in_the_passband():
    sr_in, sr_out = 22050, 16000
    t = np.arange(sr_in) / sr_in
    x = sum(np.sin(2 * np.pi * f * t + f) / 4 for f in (220.0, 1234.0, 3100.0, 6000.0))
    ours = resample(x, sr_in, sr_out)
    ref = librosa.resample(x, orig_sr=sr_in, target_sr=sr_out, res_type="soxr_hq")
    assert ours.shape == ref.shape
    inner = slice(400, -400)
    assert np.abs(ours - ref)[inner].max() < 1e-3 * np.abs(ref).max()


def test_real_speech_to_16k(samples_dir):
    wav, sr = sf.read(samples_dir / "ultrasuite-upx" / "sample.wav", dtype="float32")
    y = resample(wav, sr, 16000)
    ref = librosa.resample(wav, orig_sr=sr, target_sr=16000, res_type="soxr_hq")
    assert y.dtype == np.float32 and y.shape == ref.shape
    # Speech energy lies far below 7.6 kHz; the two filters differ only in the transition band.
    err = np.sqrt(np.mean((y - ref)[1000:-1000] ** 2) / np.mean(ref**2))
    assert err < 0.01, err


def test_dtypes_identity_and_errors():
    x = np.arange(100, dtype=np.int16)
    assert resample(x, 16000, 16000).dtype == np.float32
    y32 = resample(np.zeros(1000, np.float32), 16000, 22050)
    assert y32.dtype == np.float32
    t = torch.zeros(3, 1000, dtype=torch.float64)
    assert resample(t, 16000, 22050).dtype == torch.float64
    assert resample(t, 16000, 16000) is t
    with pytest.raises(ValueError, match="positive integers"):
        resample(x, 0, 16000)
    with pytest.raises(ValueError, match="positive integers"):
        resample(x, 22050.5, 16000)
