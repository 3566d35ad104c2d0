"""Audio level checks: is there speech to work with, and is it clipped?

``audio_level(wav, sr)`` measures peak and RMS level (dBFS: 0 dB is a full-scale sample, 1.0),
runs of samples at full scale, and the fraction of voiced frames. ``level_problems(level)``
turns the measurements into warnings a user can act on:

- **near-silent**: peak below ``silent_peak_dbfs`` (-40 dBFS by default; speech recorded at a
  usable level peaks above -20 dBFS);
- **no speech**: loud enough, but not one voiced frame (noise, music, a wrong channel);
- **clipped**: at least one run of ``clip_run`` (3) or more consecutive samples at full scale
  (``|x| >= 0.999``: a converter that saturated writes the same extreme value repeatedly, whereas
  a signal normalised to peak 1.0 touches it at isolated samples).

A frame (40 ms, hop 20 ms) is voiced when its RMS is at least ``voiced_floor_dbfs`` (-60 dBFS)
and, after a 60 Hz high-pass, its normalised autocorrelation (corrected for the window's
overlap) peaks at 0.5 or more for a pitch between 60 and 500 Hz, searched after the first zero
crossing so that a low-frequency rumble does not count as periodic. White noise stays near 0.15,
voiced speech is typically 0.7-0.95.

Callers: ``articulate inspect`` reports both; ``synthesize-uti`` warns on near-silent, speechless or clipped input with
``problems = level_problems(audio_level(wav, sr))``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["audio_level", "level_problems", "dbfs", "SILENT_PEAK_DBFS", "CLIP_LEVEL", "CLIP_RUN"]

SILENT_PEAK_DBFS = -40.0
CLIP_LEVEL = 0.999
CLIP_RUN = 3
VOICED_FLOOR_DBFS = -60.0
VOICING_THRESHOLD = 0.5
_FLOOR = 1e-10


def dbfs(x: float) -> float:
    """Amplitude (1.0 = full scale) in dBFS, floored at -200 dB for digital silence."""
    return float(20.0 * np.log10(max(float(x), _FLOOR)))


def _clip_runs(wav: np.ndarray, level: float, min_run: int) -> tuple[int, int, int]:
    """(runs of >= min_run samples at |x| >= level, longest run, samples in such runs), per channel summed."""
    runs = longest = samples = 0
    for ch in np.atleast_2d(wav):
        hot = np.abs(ch) >= level
        if not hot.any():
            continue
        edges = np.diff(np.concatenate([[0], hot.astype(np.int8), [0]]))
        lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        long_runs = lengths[lengths >= min_run]
        runs += int(long_runs.size)
        samples += int(long_runs.sum())
        longest = max(longest, int(lengths.max()))
    return runs, longest, samples


def _voiced(mono: np.ndarray, sr: int, floor_dbfs: float, threshold: float) -> tuple[int, int]:
    """(voiced frames, frames) of 40 ms frames with a 20 ms hop."""
    from scipy.signal import butter, sosfilt

    win, hop = int(round(0.040 * sr)), int(round(0.020 * sr))
    if mono.shape[0] < win or win < 8:
        return 0, 0
    energy_frames = np.lib.stride_tricks.sliding_window_view(mono, win)[::hop]
    rms = np.sqrt(np.mean(energy_frames.astype(np.float64) ** 2, axis=1))
    loud = rms >= 10 ** (floor_dbfs / 20)
    n_frames = int(energy_frames.shape[0])
    if not loud.any():
        return 0, n_frames
    x = sosfilt(butter(4, 60.0, "highpass", fs=sr, output="sos"), mono.astype(np.float64))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][loud]
    frames = frames - frames.mean(axis=1, keepdims=True)
    lo, hi = max(1, int(sr / 500.0)), min(win - 2, int(sr / 60.0))
    nfft = 1 << int(np.ceil(np.log2(2 * win)))
    voiced = 0
    for start in range(0, frames.shape[0], 2048):  # chunks bound the memory of long recordings
        block = frames[start:start + 2048]
        spec = np.fft.rfft(block, nfft, axis=1)
        acf = np.fft.irfft(np.abs(spec) ** 2, nfft, axis=1)[:, : hi + 1]
        r0 = acf[:, :1]
        ok = r0[:, 0] > 0
        norm = np.where(ok[:, None], acf / np.maximum(r0, 1e-30), 0.0) * (win / (win - np.arange(hi + 1)))[None]
        # the autocorrelation's first dip below zero: a pitch peak lies beyond it
        below = norm < 0
        below[:, 0] = False
        first_zero = np.where(below.any(axis=1), below.argmax(axis=1), hi + 1)
        lags = np.arange(hi + 1)[None]
        search = (lags >= lo) & (lags >= first_zero[:, None])
        best = np.where(search, norm, -np.inf).max(axis=1)
        voiced += int(np.count_nonzero(ok & (best >= threshold)))
    return voiced, n_frames


def audio_level(wav: np.ndarray, sr: int, clip_level: float = CLIP_LEVEL, clip_run: int = CLIP_RUN,
                voiced_floor_dbfs: float = VOICED_FLOOR_DBFS) -> dict:
    """Level measurements of float audio ``[L]`` or ``[C, L]`` in [-1, 1] at ``sr`` Hz.

    Returns ``peak`` (max |x|), ``peak_dbfs``, ``rms_dbfs`` (over all samples), ``clipped_runs``
    (runs of >= ``clip_run`` samples at |x| >= ``clip_level``), ``longest_clipped_run`` (samples),
    ``clipped_samples``, ``voiced_frames``, ``frames`` and ``voiced_fraction`` (of the channel mean).
    """
    if hasattr(wav, "detach"):
        wav = wav.detach().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim not in (1, 2) or wav.shape[-1] == 0:
        raise ValueError(f"audio_level expects [L] or [C, L] audio with L > 0, got shape {wav.shape}")
    x = wav.astype(np.float64)
    peak = float(np.abs(x).max())
    rms = float(np.sqrt(np.mean(x ** 2)))
    runs, longest, clipped = _clip_runs(wav, clip_level, clip_run)
    mono = wav if wav.ndim == 1 else wav.mean(axis=0)
    voiced, frames = _voiced(mono, int(sr), voiced_floor_dbfs, VOICING_THRESHOLD)
    return {
        "peak": peak,
        "peak_dbfs": dbfs(peak),
        "rms_dbfs": dbfs(rms),
        "clipped_runs": runs,
        "longest_clipped_run": longest,
        "clipped_samples": clipped,
        "voiced_frames": voiced,
        "frames": frames,
        "voiced_fraction": voiced / frames if frames else 0.0,
    }


def level_problems(level: dict, silent_peak_dbfs: float = SILENT_PEAK_DBFS) -> list[str]:
    """Warnings for :func:`audio_level`'s measurements (empty when the audio looks usable)."""
    problems = []
    if level["peak"] == 0.0:
        problems.append("near-silent: every sample is zero (digital silence)")
    elif level["peak_dbfs"] < silent_peak_dbfs:
        problems.append(f"near-silent: peak {level['peak_dbfs']:.1f} dBFS is below {silent_peak_dbfs:g} dBFS "
                        f"(RMS {level['rms_dbfs']:.1f} dBFS); check the recording gain or the channel")
    elif level["frames"] and level["voiced_frames"] == 0:
        problems.append(f"no speech: no voiced frame in {level['frames']} (peak {level['peak_dbfs']:.1f} dBFS, "
                        f"RMS {level['rms_dbfs']:.1f} dBFS); is there speech in this recording?")
    if level["clipped_runs"]:
        problems.append(f"clipped: {level['clipped_runs']} run(s) of consecutive samples at full scale "
                        f"(longest {level['longest_clipped_run']} samples, {level['clipped_samples']} in all)")
    return problems
