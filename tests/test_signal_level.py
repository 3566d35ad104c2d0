"""Audio level checks: dBFS figures against numpy, voicing on harmonic vs noise signals, the
near-silent real recording of issue 13 (peak 0.005), clipping runs."""

from __future__ import annotations

import numpy as np
import pytest

from articulate.readers.audio import read_audio
from articulate.signal.level import audio_level, dbfs, level_problems

SR = 16000


def _harmonic(seconds: float = 2.0, f0: float = 150.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


def test_levels_match_numpy_and_voicing_separates_voice_from_noise():
    x = _harmonic()
    level = audio_level(x, SR)
    x64 = x.astype(np.float64)
    assert level["peak"] == pytest.approx(np.abs(x64).max())
    assert level["peak_dbfs"] == pytest.approx(20 * np.log10(np.abs(x64).max()))
    assert level["rms_dbfs"] == pytest.approx(10 * np.log10(np.mean(x64 ** 2)))
    assert level["frames"] == 1 + (x.size - 640) // 320  # 40 ms frames, 20 ms hop
    assert level["voiced_fraction"] > 0.95 and level_problems(level) == []
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * SR).astype(np.float32)
    nl = audio_level(noise, SR)
    assert nl["voiced_frames"] == 0 and nl["peak_dbfs"] > -20
    assert level_problems(nl) == [f"no speech: no voiced frame in {nl['frames']} (peak {nl['peak_dbfs']:.1f} dBFS, "
                                  f"RMS {nl['rms_dbfs']:.1f} dBFS); is there speech in this recording?"]
    assert dbfs(1.0) == 0.0 and dbfs(0.5) == pytest.approx(-6.0206, abs=1e-4)
    stereo = np.stack([x, 0.5 * x])
    assert audio_level(stereo, SR)["peak"] == pytest.approx(np.abs(x64).max())


def test_real_recordings_pass_and_the_near_silent_one_is_flagged(samples_dir):
    for path in (samples_dir / "tal1" / "088_aud.wav", samples_dir / "ultrasuite-upx" / "sample.wav",
                 samples_dir / "aaa-satkit" / "File156.wav", samples_dir / "ultrax-video" / "Ultrax_TD_002.avi"):
        wav, sr = read_audio(path)
        level = audio_level(wav, sr)
        assert level_problems(level) == [], path
        assert level["voiced_fraction"] > 0.1 and level["peak_dbfs"] > -20
    # issue 13's input: a real 16 kHz recording peaking at 0.005 (-46 dBFS)
    wav, sr = read_audio(samples_dir / "tal1" / "088_aud.wav", sr=16000)
    quiet = wav * (0.005 / np.abs(wav).max())
    level = audio_level(quiet, sr)
    assert level["peak_dbfs"] == pytest.approx(20 * np.log10(0.005), abs=1e-3)
    assert level["rms_dbfs"] < -60
    problems = level_problems(level)
    assert len(problems) == 1 and problems[0].startswith("near-silent: peak -46.0 dBFS is below -40 dBFS")
    assert level_problems(audio_level(np.zeros(SR, np.float32), SR)) == ["near-silent: every sample is zero (digital silence)"]


def test_clipping_runs_not_isolated_peaks():
    x = _harmonic()
    normalised = x / np.abs(x).max()  # touches full scale at isolated samples only
    assert audio_level(normalised, SR)["clipped_runs"] == 0
    clipped = np.clip(1.6 * normalised, -1.0, 1.0)
    level = audio_level(clipped, SR)
    hot = np.abs(clipped) >= 0.999
    edges = np.diff(np.concatenate([[0], hot.astype(int), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert level["clipped_runs"] == int((runs >= 3).sum()) > 0
    assert level["longest_clipped_run"] == int(runs.max())
    assert level_problems(level)[-1].startswith(f"clipped: {level['clipped_runs']} run(s)")
    with pytest.raises(ValueError):
        audio_level(np.zeros(0, np.float32), SR)
