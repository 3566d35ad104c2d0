"""Source-filter speech synthesis driven by the articulator trajectories (Klatt-style cascade).

- Voiced source: a Rosenberg glottal pulse per period, F0 from the trajectory, period-to-period
  jitter and shimmer, breath noise modulated by the glottal cycle.
- Vocal tract: a cascade of five time-varying resonators at F1-F5 (the same formants the
  articulators imply); oral output is silenced by closure (stops, nasals).
- Noise sources: frication through a place-dependent band-pass, aspiration through the tract,
  release bursts, a low-pass voice bar in voiced closures, nasal murmur when the velum is open.
- Each component is normalised to unit RMS where it is active and mixed at fixed levels, so
  that vowels, fricatives and bursts keep natural relative loudness whatever the subject.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from articulate.phantom.anatomy import Subject
from articulate.phantom.trajectories import Trajectory

BLOCK = 48  # filter coefficients are updated every BLOCK samples (~2-3 ms)
BANDWIDTHS = np.array([70.0, 90.0, 130.0, 200.0, 280.0])  # Hz, before the F1-dependent term
MIX = {"voiced": 1.0, "aspiration": 0.12, "frication": 0.32, "burst": 0.55, "voicebar": 0.08, "nasal": 0.22}


def _resonator_coeffs(freq: np.ndarray, bw: np.ndarray, sr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block (b0, a1, a2) of a unit-DC-gain two-pole resonator."""
    freq = np.clip(freq, 50.0, 0.47 * sr)
    bw = np.broadcast_to(np.asarray(bw, dtype=np.float64), freq.shape)
    r = np.exp(-np.pi * bw / sr)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freq / sr)
    a2 = r * r
    return 1.0 + a1 + a2, a1, a2


def _tv_filter(x: np.ndarray, b: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """Time-varying biquad (all-pole numerator ``b``) with coefficients per BLOCK; state carried."""
    y = np.empty_like(x)
    zi = np.zeros(2)
    for k in range(len(b)):
        sl = slice(k * BLOCK, min((k + 1) * BLOCK, len(x)))
        if sl.start >= len(x):
            break
        y[sl], zi = lfilter([b[k]], [1.0, a1[k], a2[k]], x[sl], zi=zi)
    return y


def _tv_bandpass(x: np.ndarray, freq: np.ndarray, bw: np.ndarray, sr: float) -> np.ndarray:
    """Time-varying constant-peak-gain band-pass (two passes for a steeper skirt)."""
    freq = np.clip(freq, 100.0, 0.45 * sr)
    r = np.exp(-np.pi * bw / sr)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freq / sr)
    a2 = r * r
    g = (1.0 - r)  # keeps the peak gain near one
    for _ in range(2):
        y = np.empty_like(x)
        zi = np.zeros(2)
        for k in range(len(freq)):
            sl = slice(k * BLOCK, min((k + 1) * BLOCK, len(x)))
            if sl.start >= len(x):
                break
            y[sl], zi = lfilter([g[k], 0.0, -g[k]], [1.0, a1[k], a2[k]], x[sl], zi=zi)
        x = y
    return x


def _unit_rms(x: np.ndarray, active: np.ndarray) -> np.ndarray:
    mask = active > 0.3
    rms = float(np.sqrt(np.mean(x[mask] ** 2))) if mask.any() else float(np.sqrt(np.mean(x**2)))
    return x / max(rms, 1e-12)


def glottal_source(f0: np.ndarray, sr: float, subject: Subject, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """Glottal flow derivative and the open-phase indicator, one Rosenberg pulse per period.

    Periods are laid down one by one so jitter and shimmer act per cycle, as measured clinically.
    """
    n = len(f0)
    starts, amps = [], []
    t = 0.0
    while t < n:
        starts.append(t)
        amps.append(1.0 + subject.shimmer * rng.normal())
        period = sr / f0[min(int(t), n - 1)] * (1.0 + subject.jitter * rng.normal())
        t += max(period, sr / 600.0)
    starts_a = np.array(starts + [float(n) + sr])
    idx = np.clip(np.searchsorted(starts_a, np.arange(n), side="right") - 1, 0, len(starts) - 1)
    phase = (np.arange(n) - starts_a[idx]) / (starts_a[idx + 1] - starts_a[idx])
    tp, tn = 0.42, 0.12  # opening and (abrupt) closing fractions of the period: the closure excites the formants
    flow = np.where(phase < tp, 0.5 * (1.0 - np.cos(np.pi * phase / tp)),
                    np.where(phase < tp + tn, np.cos(0.5 * np.pi * (phase - tp) / tn), 0.0))
    flow *= np.array(amps)[idx]
    deriv = np.diff(flow, prepend=0.0)
    return deriv, (phase < tp + tn).astype(np.float64)


def synthesize(traj: Trajectory, subject: Subject, sr: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Waveform float32 [n_samples] in [-1, 1] realising ``traj`` with ``subject``'s voice."""
    ts = np.arange(n_samples) / sr
    ctl = {k: np.interp(ts, traj.t, v) for k, v in traj.src.items()}
    f0 = np.interp(ts, traj.t, traj.f0)
    nb = (n_samples + BLOCK - 1) // BLOCK
    tb = (np.arange(nb) * BLOCK + BLOCK / 2) / sr
    fb = np.stack([np.interp(tb, traj.t, f) for f in traj.formants])  # [5, nb]

    closure, voicing, loud = ctl["closure"], ctl["voicing"], ctl["loudness"]
    dglot, open_phase = glottal_source(f0, sr, subject, rng)
    noise = rng.normal(0.0, 1.0, n_samples)

    # voiced + breath excitation through the vocal-tract cascade
    excitation = _unit_rms(dglot, voicing) * voicing * (1.0 - closure)
    breath = noise * (subject.breathiness * voicing * (0.4 + 0.6 * open_phase))
    asp = rng.normal(0.0, 1.0, n_samples) * ctl["aspiration"]
    tract_in = excitation + breath * 3.0
    voiced = tract_in
    aspirated = asp
    for i in range(5):
        bw = BANDWIDTHS[i] + (0.06 * fb[0] if i == 0 else 0.0)
        b, a1, a2 = _resonator_coeffs(fb[i], bw, sr)
        voiced = _tv_filter(voiced, b, a1, a2)
        aspirated = _tv_filter(aspirated, b, a1, a2)
    voiced = _unit_rms(voiced, voicing * (1 - closure))
    aspirated = _unit_rms(aspirated, ctl["aspiration"])

    fc = np.interp(tb, traj.t, traj.fric_hz)
    fric = _tv_bandpass(rng.normal(0.0, 1.0, n_samples), fc, 0.45 * fc, sr)
    fric = _unit_rms(fric, np.ones(n_samples)) * ctl["frication"] * (1.0 - 0.8 * closure)

    burst = np.zeros(n_samples)
    length = int(0.02 * sr)
    for t_b, hz, amp in traj.bursts:
        s = int(t_b * sr)
        if s >= n_samples:
            continue
        seg = rng.normal(0.0, 1.0, length) * np.exp(-np.arange(length) / (0.004 * sr))
        seg = _tv_bandpass(seg, np.full(length // BLOCK + 1, hz), np.full(length // BLOCK + 1, 0.5 * hz), sr)
        seg = amp * seg / max(float(np.max(np.abs(seg))), 1e-12)
        burst[s: s + length] += seg[: n_samples - s]

    # closure phases: voice bar (low-passed voicing radiated through the neck) and nasal murmur
    b, a1, a2 = _resonator_coeffs(np.full(nb, 180.0 * subject.formant_scale), np.full(nb, 120.0), sr)
    voicebar = _unit_rms(_tv_filter(dglot, b, a1, a2), np.ones(n_samples)) * closure * voicing * (1 - ctl["nasal"])
    nasal_src = _unit_rms(dglot, voicing) * voicing
    nas = nasal_src
    for fn, bn in ((250.0, 100.0), (1100.0, 200.0), (2300.0, 300.0)):
        b, a1, a2 = _resonator_coeffs(np.full(nb, fn * subject.formant_scale), np.full(nb, bn), sr)
        nas = _tv_filter(nas, b, a1, a2)
    nas = _unit_rms(nas, ctl["nasal"]) * ctl["nasal"]

    gate = np.clip(loud / 0.2, 0.0, 1.0)  # silence stays silent, consonants keep their own level
    out = (MIX["voiced"] * voiced + MIX["aspiration"] * aspirated) * loud
    out += (MIX["frication"] * fric + MIX["burst"] * burst + MIX["voicebar"] * voicebar + MIX["nasal"] * nas) * gate
    out /= max(float(np.max(np.abs(out))), 1e-9)
    out = 0.7 * out + rng.normal(0.0, 10 ** (-60 / 20), n_samples)  # faint room noise
    return np.clip(out, -1.0, 1.0).astype(np.float32)
