"""Smooth, coarticulated articulator trajectories with natural timing variation.

A prompt becomes a sequence of timed segments; each segment places plateau targets only on the
articulators its phoneme specifies, the gaps are interpolated between neighbours (coarticulation),
and each articulator is low-pass filtered with its own time constant (jaw slow, tongue tip fast).
Segment durations vary per token (log-normal), per subject (speaking rate) and by stress and
phrase-final lengthening, so repetitions of one word never line up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from articulate.phantom.anatomy import Subject
from articulate.phantom.phonetics import ARTICULATORS, PHONEMES, SOURCES, formants, word_phonemes

CONTROL_HZ = 1000.0  # trajectories are sampled every millisecond

# Smoothing (Gaussian sigma, ms): the jaw is the heaviest articulator, the tongue tip the quickest.
ART_SIGMA_MS = {"jaw": 28.0, "tb_height": 20.0, "tb_back": 24.0, "tt_height": 11.0, "lip_round": 18.0,
                "lip_close": 9.0, "velum": 18.0}
SRC_SIGMA_MS = {"voicing": 6.0, "frication": 7.0, "aspiration": 6.0, "closure": 3.0, "nasal": 10.0,
                "loudness": 18.0}


@dataclass
class Trajectory:
    """Articulator and source trajectories at ``CONTROL_HZ``; the ground truth saved per recording."""

    t: np.ndarray  # [T] seconds
    art: dict[str, np.ndarray]  # ARTICULATORS -> [T] in [0, 1]
    src: dict[str, np.ndarray]  # SOURCES -> [T]
    f0: np.ndarray  # [T] Hz
    formants: np.ndarray  # [5, T] Hz
    fric_hz: np.ndarray  # [T] centre of the frication band
    segments: list[tuple[str, float, float]]  # (phoneme, start s, end s)
    bursts: np.ndarray  # [n, 3]: time s, centre Hz, amplitude
    duration: float
    extra: dict = field(default_factory=dict)

    def at(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """All articulators linearly interpolated at ``times`` (s) (e.g. image frame times)."""
        return {k: np.interp(times, self.t, v) for k, v in self.art.items()}

    def save(self, path: Path) -> None:
        arrays = {"t": self.t, "f0": self.f0, "formants": self.formants, "fric_hz": self.fric_hz,
                  "bursts": self.bursts, "duration": np.float64(self.duration),
                  "segments": np.array([f"{p}:{a:.4f}:{b:.4f}" for p, a, b in self.segments])}
        arrays.update({f"art_{k}": v.astype(np.float32) for k, v in self.art.items()})
        arrays.update({f"src_{k}": v.astype(np.float32) for k, v in self.src.items()})
        arrays.update({k: np.asarray(v) for k, v in self.extra.items()})
        np.savez_compressed(path, **arrays)


def load_trajectory(path: str | Path) -> Trajectory:
    with np.load(path) as z:
        segs = [(s.split(":")[0], float(s.split(":")[1]), float(s.split(":")[2])) for s in z["segments"]]
        known = {"t", "f0", "formants", "fric_hz", "bursts", "duration", "segments"}
        extra = {k: z[k] for k in z.files if k not in known and not k.startswith(("art_", "src_"))}
        return Trajectory(t=z["t"], art={k: z[f"art_{k}"].astype(np.float64) for k in ARTICULATORS},
                          src={k: z[f"src_{k}"].astype(np.float64) for k in SOURCES}, f0=z["f0"],
                          formants=z["formants"], fric_hz=z["fric_hz"], segments=segs, bursts=z["bursts"],
                          duration=float(z["duration"]), extra=extra)


def plan_segments(words: str, subject: Subject, rng: np.random.Generator, duration_s: float | None = None,
                  lead_s: tuple[float, float] = (0.08, 0.2),
                  fill: tuple[float, float] | None = None) -> list[tuple[str, float, float, bool]]:
    """Timed segments (phoneme, start, end, stressed), silence-padded to ``duration_s`` when given.

    ``fill``: with ``duration_s``, the speech is stretched to this (random) fraction of the
    recording, as when subjects pace a word to a metronome filling each repetition.
    """
    phones = word_phonemes(words)
    # aspiration after a voiceless stop released into a vowel, approximant or silence
    seq: list[tuple[str, bool]] = []
    for i, (ph, stress) in enumerate(phones):
        seq.append((ph, stress))
        nxt = phones[i + 1][0] if i + 1 < len(phones) else "sil"
        if ph in ("p", "t", "k") and PHONEMES[nxt].kind in ("vowel", "approximant", "silence"):
            seq.append(("H", False))
    durs = []
    for i, (ph, stress) in enumerate(seq):
        d = PHONEMES[ph].duration_ms * subject.rate * float(np.exp(rng.normal(0.0, 0.13)))
        if stress:
            d *= 1.5
        if i >= len(seq) - 2:  # phrase-final lengthening
            d *= 1.2
        durs.append(d / 1000.0)
    speech = float(sum(durs))
    lead = float(rng.uniform(*lead_s))
    if duration_s is None:
        trail = float(rng.uniform(0.12, 0.25))
        total = lead + speech + trail
    else:
        total = duration_s
        if fill is not None:
            target = float(rng.uniform(*fill)) * total
            durs = [d * target / speech for d in durs]
            speech = target
        room = total - lead - 0.08
        if speech > room:  # squeeze the speech to fit the recording, keeping relative timing
            durs = [d * room / speech for d in durs]
            speech = room
    out = [("sil", 0.0, lead, False)]
    t = lead
    for (ph, stress), d in zip(seq, durs):
        out.append((ph, t, t + d, stress))
        t += d
    out.append(("sil", t, total, False))
    return out


def make_trajectory(words: str, subject: Subject, rng: np.random.Generator, duration_s: float | None = None,
                    lead_s: tuple[float, float] = (0.08, 0.2), fill: tuple[float, float] | None = None) -> Trajectory:
    segs = plan_segments(words, subject, rng, duration_s, lead_s, fill)
    total = segs[-1][2]
    n = int(round(total * CONTROL_HZ)) + 1
    t = np.arange(n) / CONTROL_HZ
    # token-to-token variability of the targets themselves
    jit = {a: rng.normal(0.0, 0.03, len(segs)) for a in ARTICULATORS}

    art: dict[str, np.ndarray] = {}
    for a in ARTICULATORS:
        pts_t, pts_v = [], []
        for k, (ph, s, e, _) in enumerate(segs):
            val = PHONEMES[ph].targets.get(a)
            if val is None:
                continue
            lo, hi = (0.35, 0.65) if PHONEMES[ph].kind == "vowel" else (0.2, 0.8)
            if ph == "sil":
                lo, hi = 0.05, 0.95
            v = float(np.clip(val + jit[a][k], 0.0, 1.0))
            pts_t += [s + lo * (e - s), s + hi * (e - s)]
            pts_v += [v, v]
        curve = np.interp(t, pts_t, pts_v) if pts_t else np.full(n, 0.5)
        art[a] = np.clip(gaussian_filter1d(curve, ART_SIGMA_MS[a] * CONTROL_HZ / 1000.0, mode="nearest"), 0, 1)

    seg_idx = np.clip(np.searchsorted([s for _, s, _, _ in segs], t, side="right") - 1, 0, len(segs) - 1)
    raw = {k: np.zeros(len(segs)) for k in SOURCES}
    fric_hz = np.zeros(len(segs))
    for k, (ph, _, _, stress) in enumerate(segs):
        p = PHONEMES[ph]
        closure = p.kind in ("stop", "nasal")
        raw["voicing"][k] = (0.35 if p.kind == "stop" else 0.8 if p.kind == "fricative" else 1.0) if p.voiced else 0
        raw["frication"][k] = p.frication
        raw["aspiration"][k] = 1.0 if p.kind == "aspiration" else 0.0
        raw["closure"][k] = 1.0 if closure else 0.0
        raw["nasal"][k] = 1.0 if p.kind == "nasal" else 0.0
        raw["loudness"][k] = 0.0 if ph == "sil" else (1.0 if stress or p.kind != "vowel" else 0.75)
        fric_hz[k] = p.fric_hz
    src = {k: np.clip(gaussian_filter1d(raw[k][seg_idx], SRC_SIGMA_MS[k], mode="nearest"), 0, 1) for k in SOURCES}
    # hold the last frication place through non-fricative segments (only audible where frication > 0)
    for k in range(1, len(fric_hz)):
        if fric_hz[k] == 0:
            fric_hz[k] = fric_hz[k - 1]
    fric_hz[fric_hz == 0] = 5000.0
    fric = fric_hz[seg_idx] * subject.formant_scale

    speech_start, speech_end = segs[1][1], segs[-1][1]
    bursts = []
    for k, (ph, s, e, _) in enumerate(segs):
        p = PHONEMES[ph]
        if p.kind == "stop" and PHONEMES[segs[k + 1][0]].kind != "stop":
            hz = p.burst_hz
            if ph in ("k", "g"):  # fronted velars (before /i/) release higher
                hz += 900.0 * (1.0 - float(np.interp(e, t, art["tb_back"])))
            bursts.append((e, hz * subject.formant_scale, 1.0 if not p.voiced else 0.55))
    bursts_arr = np.array(bursts, dtype=np.float64).reshape(-1, 3)

    # F0: declination over the phrase, an accent on each stressed vowel, slow wander
    u = np.clip((t - speech_start) / max(speech_end - speech_start, 1e-3), 0, 1)
    accent = np.zeros(n)
    for ph, s, e, stress in segs:
        if stress:
            accent += np.exp(-0.5 * ((t - (s + 0.35 * (e - s))) / 0.07) ** 2)
    wander = gaussian_filter1d(rng.normal(0, 1, n), 40.0, mode="nearest")
    wander *= 0.02 / max(float(np.std(wander)), 1e-9)
    f0 = subject.f0_hz * float(np.exp(rng.normal(0, 0.03))) * (1.06 - 0.12 * u) * (1 + 0.12 * accent) * (1 + wander)
    src["loudness"] = src["loudness"] * (1.0 - 0.25 * u)

    return Trajectory(t=t, art=art, src=src, f0=f0, formants=formants(art, subject.formant_scale), fric_hz=fric,
                      segments=[(p, s, e) for p, s, e, _ in segs], bursts=bursts_arr, duration=float(total),
                      extra={"words": np.array(words)})
