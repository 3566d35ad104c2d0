"""MelSpectrogram (torch) against librosa.feature.melspectrogram, and the fixed [0, 1] dB scale."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from articulate.signal.mel import (
    MelConfig,
    MelSpectrogram,
    as_mel_config,
    mel_librosa,
    power_to_db,
    power_to_unit,
    unit_to_power,
)

CFG = MelConfig()

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


def speech_like(n: int = 21000, sr: int = 22050, seed: int = 0) -> np.ndarray:
    """A voiced-like chirp (rising pitch with harmonics), an amplitude envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = 110 + 80 * t / t[-1]
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 * (1 - np.cos(2 * np.pi * 3 * t)) + 0.05
    return (0.2 * env * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def parity(ref: np.ndarray, ours: np.ndarray, cfg: MelConfig = CFG) -> tuple[float, float]:
    """Max relative error on bins above 1e-6 of the max, and max absolute dB error."""
    mask = ref > 1e-6 * ref.max()
    rel = float(np.max(np.abs(ours - ref)[mask] / ref[mask]))
    db = float(np.max(np.abs(power_to_db(ours, cfg) - power_to_db(ref, cfg))))
    return rel, db


def test_crop_gives_64_frames():
    assert CFG.frames(21000) == 64
    assert mel_librosa(np.zeros(21000, np.float32), CFG).shape == (64, 64)
    assert MelSpectrogram(CFG)(torch.zeros(2, 21000)).shape == (2, 64, 64)
    c = MelConfig(center=False)
    assert c.frames(21000) == mel_librosa(np.zeros(21000, np.float32), c).shape[-1] == 1 + (21000 - 1024) // 330


@pytest.mark.parametrize("dtype, rel_tol, db_tol", [(torch.float32, 1e-4, 1e-3), (torch.float64, 1e-10, 1e-9)])
def test_torch_matches_librosa(dtype, rel_tol, db_tol):
    x = np.stack([speech_like(seed=0), speech_like(seed=1)[::-1].copy()])
    x = x.astype(np.float64 if dtype == torch.float64 else np.float32)
    ref = mel_librosa(x, CFG)
    ours = MelSpectrogram(CFG)(torch.from_numpy(x)).numpy()
    assert ours.dtype == ref.dtype and ours.shape == ref.shape == (2, 64, 64)
    rel, db = parity(ref, ours)
    assert rel < rel_tol and db < db_tol, (rel, db)


def test_real_speech_matches_librosa(samples_dir):
    wav, sr = sf.read(samples_dir / "ultrasuite-upx" / "sample.wav", dtype="float32")
    assert sr == CFG.sr
    crops = np.stack([wav[s:s + 21000] for s in (0, 40000, 90000, 150000)])
    ref = mel_librosa(crops, CFG)
    ours = MelSpectrogram(CFG)(torch.from_numpy(crops)).numpy()
    rel, db = parity(ref, ours)
    # Measured: 5e-6 relative, 3e-5 dB in float32.
    assert rel < 1e-4 and db < 1e-3, (rel, db)


@pytest.mark.parametrize(
    "changes",
    [
        dict(pad_mode="reflect", win_length=800),
        dict(pad_mode="edge", fmin=50.0, fmax=8000.0),
        dict(center=False, htk=True, norm=None),
        dict(power=1.0, n_mels=80, n_fft=2048, hop_length=256),
    ],
)
def test_other_settings_match_librosa(changes):
    cfg = MelConfig(**changes)
    x = speech_like().astype(np.float64)
    ref = mel_librosa(x, cfg)
    ours = MelSpectrogram(cfg)(torch.from_numpy(x)).numpy()
    assert ours.shape == ref.shape == (cfg.n_mels, cfg.frames(len(x)))
    rel, _ = parity(ref, ours, cfg)
    assert rel < 1e-10


def test_batch_items_are_independent():
    x = torch.from_numpy(np.stack([speech_like(seed=s) for s in range(3)]))
    mel = MelSpectrogram(CFG)
    batched = mel(x)
    for i in range(3):
        torch.testing.assert_close(batched[i], mel(x[i]), rtol=1e-5, atol=1e-9)
    assert mel(x.reshape(3, 1, -1)).shape == (3, 1, 64, 64)


def test_unit_scale_endpoints_and_inverse():
    lo, hi = 10 ** (CFG.db_min / 10), 10 ** (CFG.db_max / 10)
    mid = 10 ** ((CFG.db_min + CFG.db_max) / 20)
    p = np.array([0.0, lo / 10, lo, mid, hi, hi * 10], dtype=np.float64)
    u = power_to_unit(p, CFG)
    np.testing.assert_allclose(u, [0, 0, 0, 0.5, 1, 1], atol=1e-12)
    torch.testing.assert_close(power_to_unit(torch.from_numpy(p), CFG), torch.from_numpy(u))
    inside = np.geomspace(lo, hi, 50)
    np.testing.assert_allclose(unit_to_power(power_to_unit(inside, CFG), CFG), inside, rtol=1e-10)
    t = torch.from_numpy(inside).float()
    torch.testing.assert_close(unit_to_power(power_to_unit(t, CFG), CFG), t, rtol=1e-4, atol=0)
    assert power_to_unit(inside.astype(np.float32), CFG).dtype == np.float32


def test_unit_scale_covers_full_scale_audio_and_16bit_floor():
    sr = CFG.sr
    t = np.arange(sr) / sr
    loudest = max(mel_librosa(np.sin(2 * np.pi * f * t).astype(np.float32), CFG).max() for f in (100, 1000, 5000))
    square = mel_librosa(np.sign(np.sin(2 * np.pi * 120 * t)).astype(np.float32), CFG).max()
    # A full-scale sine or square wave stays below db_max: the scale never clips valid audio.
    assert power_to_unit(max(loudest, square), CFG) < 0.97
    rng = np.random.default_rng(0)
    dither = (rng.uniform(-0.5, 0.5, sr) / 32768).astype(np.float32)  # one 16-bit LSB of noise
    u = power_to_unit(mel_librosa(dither, CFG), CFG)
    assert np.median(u) < 0.1 and u.min() < 0.02


def test_half_precision_input_is_computed_in_float32():
    x = torch.from_numpy(speech_like())
    ref = MelSpectrogram(CFG)(x)
    half = MelSpectrogram(CFG)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    # Only the bfloat16 rounding of input and output: ~1 % of the value (0.1 dB) on loud bins.
    mask = ref > 1e-3 * ref.max()
    assert torch.max(torch.abs(half.float() - ref)[mask] / ref[mask]) < 0.05


def test_config_from_dict_and_validation():
    assert as_mel_config({"n_mels": 80}).n_mels == 80
    assert as_mel_config(None) == CFG
    with pytest.raises(ValueError, match="unknown"):
        as_mel_config({"nmels": 80})
    with pytest.raises(ValueError, match="Nyquist"):
        MelConfig(fmax=20000.0)
    with pytest.raises(ValueError, match="db_max"):
        MelConfig(db_min=0.0, db_max=-10.0)
    with pytest.raises(ValueError, match="pad_mode"):
        MelConfig(pad_mode="wrap")
    with pytest.raises(TypeError):
        MelSpectrogram(CFG)(torch.zeros(2, 21000, dtype=torch.int16))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_librosa():
    x = np.stack([speech_like(seed=s) for s in range(4)])
    ref = mel_librosa(x, CFG)
    ours = MelSpectrogram(CFG).cuda()(torch.from_numpy(x).cuda()).cpu().numpy()
    rel, db = parity(ref, ours)
    assert rel < 1e-3 and db < 1e-2, (rel, db)
