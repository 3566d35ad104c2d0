"""Mel -> waveform: the torch Griffin-Lim port against librosa, NNLS inversion, round trips."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from articulate.signal.griffin_lim import (
    griffin_lim,
    initial_phase,
    istft,
    mel_to_audio,
    mel_to_audio_librosa,
    mel_to_stft,
    stft,
)
from articulate.signal.mel import MelConfig, mel_basis, mel_librosa, power_to_db

CFG = MelConfig()

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)
N = 21000


def speech_like(n: int = N, sr: int = 22050, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    phase = 2 * np.pi * np.cumsum(120 + 60 * t / t[-1]) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 10))
    env = 0.5 * (1 - np.cos(2 * np.pi * 2 * t)) + 0.05
    return (0.2 * env * x + 0.005 * rng.standard_normal(n)).astype(np.float32)


def round_trip_errors(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spectral convergence |S - S'|_F / |S|_F of STFT magnitudes, and mean |mel dB error| on bins
    above 1e-6 of the max."""
    kw = dict(n_fft=CFG.n_fft, hop_length=CFG.hop_length)
    s, r = np.abs(librosa.stft(x, **kw)), np.abs(librosa.stft(y, **kw))
    sc = float(np.linalg.norm(s - r) / np.linalg.norm(s))
    m, mr = mel_librosa(x, CFG), mel_librosa(y, CFG)
    mask = m > 1e-6 * m.max()
    return sc, float(np.abs(power_to_db(m, CFG) - power_to_db(mr, CFG))[mask].mean())


@pytest.mark.parametrize("center", [True, False])
def test_stft_istft_match_librosa_and_invert(center):
    cfg = MelConfig(center=center)
    x = speech_like().astype(np.float64)
    spec = stft(torch.from_numpy(x)[None], cfg)[0].numpy()
    ref = librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop_length, center=center, pad_mode=cfg.pad_mode)
    np.testing.assert_allclose(spec, ref, atol=1e-9 * np.abs(ref).max())
    back = istft(torch.from_numpy(spec)[None], cfg, length=N)[0].numpy()
    ref_back = librosa.istft(ref, hop_length=cfg.hop_length, n_fft=cfg.n_fft, center=center, length=N)
    np.testing.assert_allclose(back, ref_back, atol=1e-9)
    inner = slice(cfg.n_fft, N - cfg.n_fft)  # center=False leaves the edges without full overlap
    np.testing.assert_allclose(back[inner], x[inner], atol=1e-9)


def test_griffin_lim_matches_librosa_given_magnitude():
    x = speech_like().astype(np.float64)
    mag = np.abs(librosa.stft(x, n_fft=CFG.n_fft, hop_length=CFG.hop_length))
    ref = librosa.griffinlim(mag, n_iter=32, hop_length=CFG.hop_length, n_fft=CFG.n_fft, random_state=3, length=N)
    ours = griffin_lim(torch.from_numpy(mag), CFG, n_iter=32, length=N, seed=3).numpy()
    # Same initial phase (RandomState(3)), same updates: equal to float64 rounding (measured 8e-14).
    assert np.abs(ours - ref).max() < 1e-9 * np.abs(ref).max()
    ref32 = librosa.griffinlim(mag.astype(np.float32), n_iter=32, hop_length=CFG.hop_length, n_fft=CFG.n_fft,
                               random_state=3, length=N)
    ours32 = griffin_lim(torch.from_numpy(mag.astype(np.float32)), CFG, length=N, seed=3).numpy()
    assert ours32.dtype == np.float32
    assert np.abs(ours32 - ref32).max() < 1e-3 * np.abs(ref32).max()  # measured 1.4e-4


def test_griffin_lim_from_a_given_start_phase():
    """A start phase of one's own: librosa's seeded start given as a tensor gives librosa's result; with no iteration
    the output is that start under the magnitude (inverse STFT); a start of the wrong shape is refused."""
    x = speech_like().astype(np.float64)
    mag = torch.from_numpy(np.abs(librosa.stft(x, n_fft=CFG.n_fft, hop_length=CFG.hop_length)))
    start = torch.from_numpy(initial_phase(tuple(mag.shape), seed=3))
    ref = librosa.griffinlim(mag.numpy(), n_iter=32, hop_length=CFG.hop_length, n_fft=CFG.n_fft, random_state=3, length=N)
    ours = griffin_lim(mag, CFG, n_iter=32, length=N, init=start).numpy()
    assert np.abs(ours - ref).max() < 1e-9 * np.abs(ref).max()
    zero = griffin_lim(mag[None], CFG, n_iter=0, length=N, init=start)
    ref0 = librosa.istft((mag * start).numpy(), hop_length=CFG.hop_length, n_fft=CFG.n_fft, length=N)
    np.testing.assert_allclose(zero[0].numpy(), ref0, atol=1e-9)
    with pytest.raises(ValueError, match="start phase"):
        griffin_lim(mag, CFG, n_iter=1, init=start[:, :-1])


def test_nnls_inverts_the_mel_better_than_librosa():
    x = speech_like().astype(np.float64)
    mel = mel_librosa(x, CFG)
    basis = mel_basis(CFG).astype(np.float64)
    ours = mel_to_stft(torch.from_numpy(mel), CFG).numpy()
    ref = librosa.feature.inverse.mel_to_stft(mel, sr=CFG.sr, n_fft=CFG.n_fft, power=CFG.power)
    assert ours.shape == ref.shape == (CFG.n_freqs, 64) and ours.min() >= 0
    res_ours = np.linalg.norm(basis @ ours**2 - mel) / np.linalg.norm(mel)
    res_ref = np.linalg.norm(basis @ ref**2 - mel) / np.linalg.norm(mel)
    # librosa's L-BFGS-B stops near its pseudo-inverse start (~0.1); FISTA reaches < 1e-3.
    assert res_ours < 1e-3 and res_ours < res_ref, (res_ours, res_ref)
    db = np.abs(power_to_db(basis @ ours**2, CFG) - power_to_db(mel, CFG))
    assert np.mean(db[mel > 1e-6 * mel.max()]) < 0.05


def test_round_trip_torch_at_least_as_good_as_librosa():
    x = speech_like()
    mel = mel_librosa(x, CFG)
    y_ref = mel_to_audio_librosa(mel, CFG, length=N)
    y = mel_to_audio(torch.from_numpy(mel), CFG, length=N).numpy()
    assert y.shape == y_ref.shape == (N,) and y.dtype == np.float32
    sc_ref, db_ref = round_trip_errors(x, y_ref)
    sc, db = round_trip_errors(x, y)
    # Measured here: librosa SC 0.27-0.44 / 0.5-1.6 dB; torch SC 0.14-0.26 / 0.36-0.59 dB.
    assert sc < 0.35 and db < 1.0, (sc, db)
    assert sc <= sc_ref + 0.02 and db <= db_ref + 0.1, (sc, sc_ref, db, db_ref)


def test_round_trip_real_speech(samples_dir):
    wav, _ = sf.read(samples_dir / "ultrasuite-upx" / "sample.wav", dtype="float32")
    crops = np.stack([wav[s:s + N] for s in (20000, 60000)])
    mel = torch.from_numpy(mel_librosa(crops, CFG))
    y = mel_to_audio(mel, CFG, length=N).numpy()
    for x, yi in zip(crops, y):
        sc_ref, db_ref = round_trip_errors(x, mel_to_audio_librosa(mel_librosa(x, CFG), CFG, length=N))
        sc, db = round_trip_errors(x, yi)
        assert sc < 0.3 and db < 1.0 and sc <= sc_ref + 0.02, (sc, db, sc_ref, db_ref)


def test_lengths_determinism_and_batch_independence():
    x = np.stack([speech_like(seed=s) for s in range(3)])
    mel = torch.from_numpy(mel_librosa(x, CFG))
    default = mel_to_audio(mel, CFG, n_iter=4)
    assert default.shape == (3, CFG.samples(64)) == (3, 20790)
    assert mel_to_audio_librosa(mel[0].numpy(), CFG, n_iter=4).shape == (20790,)
    y = mel_to_audio(mel, CFG, n_iter=4, length=N)
    assert y.shape == (3, N)
    torch.testing.assert_close(mel_to_audio(mel, CFG, n_iter=4, length=N), y, rtol=0, atol=0)
    torch.testing.assert_close(mel_to_audio(mel[1:2], CFG, n_iter=4, length=N)[0], y[1], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(mel_to_audio(mel[:1], CFG, n_iter=4, length=N, seed=1), y[:1])
    with pytest.raises(ValueError, match="bands"):
        mel_to_audio(mel[:, :10], CFG)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    mel = torch.from_numpy(mel_librosa(np.stack([speech_like(seed=s) for s in range(2)]), CFG))
    cpu = mel_to_audio(mel, CFG, length=N)
    gpu = mel_to_audio(mel.cuda(), CFG, length=N).cpu()
    sc = [round_trip_errors(a.numpy(), b.numpy())[0] for a, b in zip(cpu, gpu)]
    assert max(sc) < 0.05, sc
