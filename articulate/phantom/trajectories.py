"""Smooth, coarticulated articulator trajectories with natural timing variation.

A prompt becomes a sequence of timed segments; each segment places targets only on the
articulators its phoneme specifies (held over a consonant's middle, only briefly in a vowel, so
formants keep moving), the gaps are interpolated between neighbours (coarticulation), and each
articulator is low-pass filtered with its own time constant (jaw slow, tongue tip fast). Around
the speech the articulators glide from rest into an in-breath, and relax slowly afterwards; a slow
postural drift (and quiet breathing in silence) means the tongue is never frozen. Segment
durations vary per token (log-normal), per subject (speaking rate) and by stress and phrase-final
lengthening, so repetitions of one word never line up exactly. F0 follows an intonation contour
around the subject's mean F0, which its larynx sets (:mod:`anatomy`): drawn afresh per utterance
(:func:`_intonation`), or, for a metronome-paced word list, the word's stereotyped contour, shown by the
larynx's height (:mod:`articulate.phantom.prosody`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from articulate.phantom.anatomy import Subject
from articulate.phantom.phonetics import ARTICULATORS, PHONEMES, SOURCES, formants, word_phonemes
from articulate.phantom.prosody import (
    MAX_F0_SLOPE,
    SpeakerProsody,
    WordContour,
    accent,
    boundary_shape,
    f0_from_phrase,
    larynx_height,
    microprosody,
    phrase_contour,
    slew_limit,
    take_contour,
)

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
    larynx_mm: np.ndarray | None = None  # [T] larynx (and hyoid) height from rest, mm up (paced word lists)

    def at(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """All articulators linearly interpolated at ``times`` (s) (e.g. image frame times); ``larynx`` (mm) too
        where the trajectory moves the larynx."""
        out = {k: np.interp(times, self.t, v) for k, v in self.art.items()}
        if self.larynx_mm is not None:
            out["larynx"] = np.interp(times, self.t, self.larynx_mm)
        return out

    def save(self, path: Path) -> None:
        arrays = {"t": self.t, "f0": self.f0, "formants": self.formants, "fric_hz": self.fric_hz,
                  "bursts": self.bursts, "duration": np.float64(self.duration),
                  "segments": np.array([f"{p}:{a:.4f}:{b:.4f}" for p, a, b in self.segments])}
        arrays.update({f"art_{k}": v.astype(np.float32) for k, v in self.art.items()})
        arrays.update({f"src_{k}": v.astype(np.float32) for k, v in self.src.items()})
        if self.larynx_mm is not None:
            arrays["larynx_mm"] = self.larynx_mm.astype(np.float32)
        arrays.update({k: np.asarray(v) for k, v in self.extra.items()})
        np.savez_compressed(path, **arrays)


def load_trajectory(path: str | Path) -> Trajectory:
    with np.load(path) as z:
        segs = [(s.split(":")[0], float(s.split(":")[1]), float(s.split(":")[2])) for s in z["segments"]]
        known = {"t", "f0", "formants", "fric_hz", "bursts", "duration", "segments", "larynx_mm"}
        extra = {k: z[k] for k in z.files if k not in known and not k.startswith(("art_", "src_"))}
        return Trajectory(t=z["t"], art={k: z[f"art_{k}"].astype(np.float64) for k in ARTICULATORS},
                          src={k: z[f"src_{k}"].astype(np.float64) for k in SOURCES}, f0=z["f0"],
                          formants=z["formants"], fric_hz=z["fric_hz"], segments=segs, bursts=z["bursts"],
                          duration=float(z["duration"]), extra=extra,
                          larynx_mm=z["larynx_mm"].astype(np.float64) if "larynx_mm" in z.files else None)


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
    sustained = len(seq) == 1 and PHONEMES[seq[0][0]].kind == "vowel"  # a vowel prompt is held (~0.5 s)
    for i, (ph, stress) in enumerate(seq):
        d = PHONEMES[ph].duration_ms * subject.rate * float(np.exp(rng.normal(0.0, 0.13)))
        if sustained:
            d *= 2.5
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


# The posture taken to breathe in just before speaking: jaw and lips part, the tongue drops, the
# nasal port is still open (added to the rest posture of "sil")
INHALE = {"jaw": 0.12, "tb_height": -0.1, "tb_back": 0.05, "tt_height": -0.03, "lip_round": -0.05,
          "lip_close": -0.45, "velum": 0.1}
DRIFT_SIGMA_MS = 140.0  # slow postural drift: never exactly still, also in silence
DRIFT_SD = {"speech": 0.02, "silence": 0.035}


def _articulators(segs: list[tuple[str, float, float, bool]], t: np.ndarray,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Articulator curves: targets per segment, interpolated between neighbours, smoothed, plus drift.

    Consonants hold their targets over the middle of the segment; vowels only briefly (so formants
    keep moving through a vowel, as they do in speech); silences are a glide from the rest posture
    into an in-breath before speaking and a slow relaxation back to rest after it.
    """
    n = len(t)
    speech_start, speech_end, total = segs[1][1], segs[-1][1], segs[-1][2]
    jit = {a: rng.normal(0.0, 0.03, len(segs)) for a in ARTICULATORS}  # token-to-token target variation
    rest = {a: float(np.clip(PHONEMES["sil"].targets[a] + rng.normal(0.0, 0.04), 0, 1)) for a in ARTICULATORS}
    t_inhale = max(0.5 * speech_start, speech_start - float(rng.uniform(0.08, 0.16)))
    t_relaxed = min(total, speech_end + float(rng.uniform(0.25, 0.45)))
    depth = float(rng.uniform(0.5, 1.0))  # how deep the in-breath is
    breath_hz, breath_phase = float(rng.uniform(0.2, 0.35)), float(rng.uniform(0, 2 * np.pi))
    in_speech = ((t >= speech_start) & (t <= speech_end)).astype(np.float64)
    in_speech = gaussian_filter1d(in_speech, 60.0 * CONTROL_HZ / 1000.0, mode="nearest")
    art: dict[str, np.ndarray] = {}
    for a in ARTICULATORS:
        pts_t, pts_v = [0.0], [rest[a]]
        if t_inhale > 0.02:
            pts_t.append(t_inhale)
            pts_v.append(rest[a] + depth * INHALE[a])
        for k, (ph, s, e, _) in enumerate(segs[1:-1], start=1):
            val = PHONEMES[ph].targets.get(a)
            if val is None:
                continue
            lo, hi = (0.42, 0.58) if PHONEMES[ph].kind == "vowel" else (0.3, 0.7)
            v = float(np.clip(val + jit[a][k], 0.0, 1.0))
            pts_t += [s + lo * (e - s), s + hi * (e - s)]
            pts_v += [v, v]
        if t_relaxed > pts_t[-1]:
            pts_t.append(t_relaxed)
            pts_v.append(rest[a])
        curve = np.interp(t, pts_t, pts_v)
        curve = gaussian_filter1d(curve, ART_SIGMA_MS[a] * CONTROL_HZ / 1000.0, mode="nearest")
        drift = gaussian_filter1d(rng.normal(0.0, 1.0, n), DRIFT_SIGMA_MS * CONTROL_HZ / 1000.0, mode="reflect")
        drift /= max(float(np.std(drift)), 1e-9)
        sd = DRIFT_SD["silence"] + (DRIFT_SD["speech"] - DRIFT_SD["silence"]) * in_speech
        curve = curve + sd * drift
        if a in ("jaw", "tb_height"):  # quiet breathing moves the jaw and tongue a little
            curve = curve + 0.015 * (1.0 - in_speech) * np.sin(2 * np.pi * breath_hz * t + breath_phase)
        art[a] = np.clip(curve, 0.0, 1.0)
    return art


def _intonation(segs: list[tuple[str, float, float, bool]], t: np.ndarray, subject: Subject,
                rng: np.random.Generator) -> np.ndarray:
    """F0 (Hz) of free speech: the subject's mean F0 moved by a phrase contour in semitones, drawn afresh.

    Declination over the phrase, a rise-fall accent on the first, the last and some of the other
    stressed vowels (rising through the syllable's onset, peaking early in the vowel; later accents
    downstepped), a final fall over the last vowel (sometimes a rise), consonant microprosody
    (higher after voiceless, lower in voiced obstruents), a slow wander and a per-utterance key;
    pitch changes at most ``MAX_F0_SLOPE``. Cycle-to-cycle jitter is added by the glottal source.
    Metronome-paced word lists are stereotyped instead (:mod:`articulate.phantom.prosody`).
    """
    n = len(t)
    dt = 1.0 / CONTROL_HZ
    speech_start, speech_end = segs[1][1], segs[-1][1]
    u = np.clip((t - speech_start) / max(speech_end - speech_start, 1e-3), 0, 1)
    st = float(rng.normal(0.0, 0.6)) + float(rng.uniform(0.5, 1.5)) - float(rng.uniform(1.5, 3.5)) * u
    span = float(rng.uniform(0.85, 1.35))  # how lively this utterance is
    stressed = [k for k, seg in enumerate(segs) if seg[3]]
    # the first and the last (nuclear) stressed syllables carry an accent, the others only sometimes
    accented = {k for k in stressed if k in (stressed[0], stressed[-1]) or rng.random() < 0.5} if stressed else set()
    k_acc = 0
    for k, (ph, s, e, _stress) in enumerate(segs):
        if k in accented:
            amp = span * float(rng.uniform(4.0, 7.0)) * 0.85**k_acc
            st = st + accent(t, s, e, amp, float(rng.uniform(0.2, 0.5)))
            k_acc += 1
        micro = microprosody(ph, s, e, t)
        if micro is not None:
            st = st + micro
    shape = boundary_shape(segs, t)
    if shape is not None:  # the boundary tone: a fall (statements) or a rise over the last vowel
        st = st + span * float(rng.uniform(3.0, 6.0)) * (-1.0 if rng.random() < 0.8 else 0.7) * shape
    wander = gaussian_filter1d(rng.normal(0, 1, n), 40.0, mode="nearest")
    st = st + 0.35 * wander / max(float(np.std(wander)), 1e-9)
    st = gaussian_filter1d(st, 8.0, mode="nearest")
    return subject.f0_hz * 2.0 ** (slew_limit(st, MAX_F0_SLOPE * dt) / 12.0)


def make_trajectory(words: str, subject: Subject, rng: np.random.Generator, duration_s: float | None = None,
                    lead_s: tuple[float, float] = (0.08, 0.2), fill: tuple[float, float] | None = None,
                    prosody: tuple[WordContour, SpeakerProsody] | None = None) -> Trajectory:
    """The trajectory of ``words`` said by ``subject``, every random choice from ``rng``.

    ``prosody`` (a word's contour and the speaker's way of saying it): the stereotyped intonation of a
    metronome-paced word list, with the larynx height that shows it (``larynx_mm``, and ``phrase_st`` and
    ``contour`` in ``extra``); without it, free intonation (:func:`_intonation`) and a larynx at rest.
    """
    segs = plan_segments(words, subject, rng, duration_s, lead_s, fill)
    total = segs[-1][2]
    n = int(round(total * CONTROL_HZ)) + 1
    t = np.arange(n) / CONTROL_HZ
    art = _articulators(segs, t, rng)

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
    for k, (ph, _s, e, _) in enumerate(segs):
        p = PHONEMES[ph]
        if p.kind == "stop" and PHONEMES[segs[k + 1][0]].kind != "stop":
            hz = p.burst_hz
            if ph in ("k", "g"):  # fronted velars (before /i/) release higher
                hz += 900.0 * (1.0 - float(np.interp(e, t, art["tb_back"])))
            bursts.append((e, hz * subject.formant_scale, 1.0 if not p.voiced else 0.55))
    bursts_arr = np.array(bursts, dtype=np.float64).reshape(-1, 3)

    larynx = None
    if prosody is None:
        f0 = _intonation(segs, t, subject, rng)
    else:
        contour = take_contour(*prosody, rng)
        phrase = phrase_contour(segs, t, contour)
        f0 = f0_from_phrase(phrase, segs, t, subject.f0_hz, rng)
        larynx = larynx_height(phrase, segs, t, prosody[1], rng)
    u = np.clip((t - speech_start) / max(speech_end - speech_start, 1e-3), 0, 1)
    src["loudness"] = src["loudness"] * (1.0 - 0.25 * u)

    traj = Trajectory(t=t, art=art, src=src, f0=f0, formants=formants(art, subject.formant_scale), fric_hz=fric,
                      segments=[(p, s, e) for p, s, e, _ in segs], bursts=bursts_arr, duration=float(total),
                      extra={"words": np.array(words)}, larynx_mm=larynx)
    if prosody is not None:
        traj.extra.update(phrase_st=phrase.astype(np.float32), contour=np.array(contour.as_json()))
    return traj
