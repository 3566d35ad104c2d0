"""Intonation of a metronome-paced word list, and the larynx height that shows it in the MRI.

The mri2audio speakers said one word in time with a metronome, repetition after repetition (a tagged cine
MRI is assembled over such repetitions). That speech is stereotyped: a word has its own F0 contour
(:class:`WordContour`: a start above the key, declination, a rise-fall accent on its stressed syllables, the
final boundary tone), a speaker says it in their own key and range (:class:`SpeakerProsody`), and one
repetition varies that only a little (:func:`take_contour`). The contour is laid on the repetition's own
segment timing (:func:`phrase_contour`).

F0 is the speaker's mean F0 moved by that phrase contour, plus consonant microprosody and a fast wander
(:func:`f0_from_phrase`). The larynx, and the hyoid tightly linked to it, rises and falls with the phrase
contour at the speaker's millimetres per octave while the word is spoken and rests in silence
(:func:`larynx_height`), so the images show the intonation. What they do not show: the wander, and a slow
postural drift of the larynx itself; the microprosody follows from the consonants, which the images show.
:func:`phrase_from_larynx` reads the phrase contour back from the larynx track with the phantom's own mapping
(what a model that sees the larynx can know; :mod:`articulate.phantom.ceilings`).

The helpers (:func:`accent`, :func:`microprosody`, :func:`boundary_shape`, :func:`slew_limit`) are also the
pieces of the free intonation of the other recordings (``trajectories._intonation``).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from articulate.phantom.phonetics import PHONEMES, word_phonemes

Segments = list[tuple[str, float, float, bool]]  # (phoneme, start s, end s, stressed), silences first and last

MAX_F0_SLOPE = 60.0  # semitones per second: about the fastest large pitch change (Xu & Sun 2002)
WANDER_ST = 0.35  # fast F0 wander (s.d., semitones) that no articulator shows

# Larynx height per octave of F0. MRI of sustained phonation across the range: 10.8, 19.4 and 29.9 mm per
# octave in three speakers (Hirai, Honda, Fujimoto & Shimada 1994, J. Acoust. Soc. Jpn. 50(4)); the larynx moves
# most in the low and mid range and little in the high range, where the hyoid moves forward instead (Honda,
# Hirai, Masaki & Shimada 1999, Language and Speech 42(4)); larynx height follows F0 closely in glissandi and
# more loosely in discrete pitch changes (Shipp 1975, J. Speech Hear. Res. 18). Speech intonation moves around
# the mid range in small steps, so we draw a speaker's gain below the sustained-phonation figures: a few
# millimetres per octave (uniform, mm of the subject's own anatomy, image scale).
LARYNX_MM_PER_OCTAVE = (5.0, 10.0)
LARYNX_SIGMA_MS = 25.0  # the extrinsic laryngeal muscles move the larynx more slowly than F0 changes
LARYNX_MARGIN_S = 0.1  # the larynx takes its position before voicing starts and holds it just after
LARYNX_EDGE_MS = 50.0  # how fast it leaves and returns to rest around the word (Gaussian sigma)
LARYNX_DRIFT_MM = 0.15  # slow postural drift of the larynx height (s.d., a twelfth of a pixel): not intonation
LARYNX_DRIFT_MS = 250.0


# --------------------------------------------------------------------------------------------- pieces


def accent(t: np.ndarray, s: float, e: float, amp: float, peak_frac: float) -> np.ndarray:
    """A rise-fall pitch accent (semitones) on the syllable [s, e]: a quick rise to a peak ``peak_frac`` into
    it, a slower fall."""
    peak = s + peak_frac * (e - s)
    rise, fall = 0.08, max(0.1, 0.7 * (e - peak))
    width = np.where(t < peak, rise, fall)
    return amp * np.exp(-0.5 * ((t - peak) / width) ** 2)


def microprosody(ph: str, s: float, e: float, t: np.ndarray) -> np.ndarray | None:
    """F0 perturbation (semitones) by an obstruent: raised at the voicing onset after a voiceless one, lowered
    through a voiced one; None for other segments."""
    p = PHONEMES[ph]
    if p.kind in ("stop", "fricative") and not p.voiced:
        return 1.0 * np.exp(-np.clip(t - e, 0, None) / 0.03) * (t >= e)
    if p.kind in ("stop", "fricative"):
        return -0.7 * ((t >= s) & (t < e))
    return None


def boundary_shape(segs: Segments, t: np.ndarray) -> np.ndarray | None:
    """The boundary tone's shape over the last vowel (0 -> 1, quadratic from its middle); None without a vowel."""
    vowels = [(s, e) for ph, s, e, _ in segs if PHONEMES[ph].kind == "vowel"]
    if not vowels:
        return None
    s, e = vowels[-1]
    tail = np.clip((t - 0.5 * (s + e)) / max(0.5 * (e - s), 1e-3), 0, 1)
    return tail**2


def slew_limit(st: np.ndarray, step: float) -> np.ndarray:
    """At most ``step`` per sample (the larynx cannot step), run both ways and averaged so it does not lag."""
    n = len(st)
    fwd, bwd = st.copy(), st.copy()
    for i in range(1, n):
        fwd[i] = min(max(st[i], fwd[i - 1] - step), fwd[i - 1] + step)
        bwd[n - 1 - i] = min(max(st[n - 1 - i], bwd[n - i] - step), bwd[n - i] + step)
    return 0.5 * (fwd + bwd)


def speech_span(segs: Segments) -> tuple[float, float]:
    return segs[1][1], segs[-1][1]


# --------------------------------------------------------------------------------------------- stereotypy


@dataclass(frozen=True)
class WordContour:
    """A word's intonation as every speaker says it: semitones, before the speaker's range (``span``) is applied."""

    onset: float  # start of the word above the key
    declination: float  # fall over the word
    span: float  # how lively the word is said
    accents: tuple[tuple[float, float] | None, ...]  # per stressed syllable: (amplitude, peak position) or None
    boundary: float  # signed amplitude of the final boundary tone (negative: a fall)


@dataclass(frozen=True)
class SpeakerProsody:
    """How one speaker says the word list: their key (semitones from their mean F0), range, accent timing, and
    how far their larynx moves per octave."""

    key: float
    span: float
    peak_shift: float
    larynx_mm_per_octave: float


@dataclass(frozen=True)
class Contour:
    """One repetition's phrase contour parameters (what :func:`phrase_contour` lays on the segments)."""

    key: float
    onset: float
    declination: float
    span: float
    accents: tuple[tuple[float, float] | None, ...]
    boundary: float

    def as_json(self) -> str:
        return json.dumps(asdict(self))


def stressed_count(word: str) -> int:
    return sum(1 for _, stress in word_phonemes(word) if stress)


def draw_word_contour(rng: np.random.Generator, n_stressed: int) -> WordContour:
    """A word's contour, shaped as the free intonation's (``trajectories._intonation``) for a word said on its
    own: the first and last stressed syllables accented, the others half the time; mostly a final fall. A
    word said alone is a whole phrase, said with a full accent and boundary: the excursions are drawn from the
    upper part of the free ranges."""
    onset, declination = float(rng.uniform(0.5, 1.5)), float(rng.uniform(1.5, 3.5))
    span = float(rng.uniform(1.0, 1.35))
    accents = []
    for j in range(n_stressed):
        draw = (float(rng.uniform(5.0, 7.5)), float(rng.uniform(0.2, 0.5)))
        accents.append(draw if j in (0, n_stressed - 1) or rng.random() < 0.5 else None)
    boundary = float(rng.uniform(4.0, 6.5)) * (-1.0 if rng.random() < 0.8 else 0.7)
    return WordContour(onset, declination, span, tuple(accents), boundary)


def draw_speaker_prosody(rng: np.random.Generator) -> SpeakerProsody:
    return SpeakerProsody(key=float(rng.normal(0.0, 1.0)), span=float(np.exp(rng.normal(0.0, 0.1))),
                          peak_shift=float(rng.normal(0.0, 0.04)),
                          larynx_mm_per_octave=float(rng.uniform(*LARYNX_MM_PER_OCTAVE)))


def word_generator(seed: int, word: str, *keys: int) -> np.random.Generator:
    """The generator of ``word``'s contour in the cohort of ``seed`` (shared by every speaker and repetition)."""
    return np.random.default_rng([int(seed), 5, zlib.crc32(word.encode()), *keys])


def take_contour(word: WordContour, speaker: SpeakerProsody, rng: np.random.Generator) -> Contour:
    """One repetition: the word's contour in the speaker's key and range, varied a little (key +-0.3 st,
    excursions +-8 %, accent peaks +-3 % of the syllable)."""
    key = speaker.key + float(rng.normal(0.0, 0.3))
    onset = word.onset + float(rng.normal(0.0, 0.15))
    declination = word.declination * float(np.exp(rng.normal(0.0, 0.1)))
    span = word.span * speaker.span * float(np.exp(rng.normal(0.0, 0.05)))
    accents = []
    for acc in word.accents:
        jit = (float(np.exp(rng.normal(0.0, 0.08))), float(rng.normal(0.0, 0.03)))
        accents.append(None if acc is None else
                       (acc[0] * jit[0], float(np.clip(acc[1] + speaker.peak_shift + jit[1], 0.05, 0.8))))
    boundary = word.boundary * float(np.exp(rng.normal(0.0, 0.08)))
    return Contour(key, onset, declination, span, tuple(accents), boundary)


def phrase_contour(segs: Segments, t: np.ndarray, c: Contour) -> np.ndarray:
    """The phrase contour (semitones from the speaker's mean F0): key, declination, accents (later ones
    downstepped) and the boundary tone, on these segments' timing."""
    speech_start, speech_end = speech_span(segs)
    u = np.clip((t - speech_start) / max(speech_end - speech_start, 1e-3), 0, 1)
    st = c.key + c.onset - c.declination * u
    stressed = [k for k, seg in enumerate(segs) if seg[3]]
    k_acc = 0
    for k, acc in zip(stressed, c.accents):
        if acc is not None:
            st = st + accent(t, segs[k][1], segs[k][2], c.span * acc[0] * 0.85**k_acc, acc[1])
            k_acc += 1
    shape = boundary_shape(segs, t)
    if shape is not None:
        st = st + c.span * c.boundary * shape
    return st


def f0_from_phrase(phrase: np.ndarray, segs: Segments, t: np.ndarray, f0_hz: float,
                   rng: np.random.Generator) -> np.ndarray:
    """F0 (Hz): the phrase contour plus consonant microprosody and a fresh fast wander, smoothed and
    slew-limited, around ``f0_hz``."""
    st = phrase.copy()
    for ph, s, e, _ in segs:
        m = microprosody(ph, s, e, t)
        if m is not None:
            st = st + m
    dt = float(t[1] - t[0])
    wander = gaussian_filter1d(rng.normal(0, 1, len(t)), 0.04 / dt, mode="nearest")
    st = st + WANDER_ST * wander / max(float(np.std(wander)), 1e-9)
    st = gaussian_filter1d(st, 0.008 / dt, mode="nearest")
    return f0_hz * 2.0 ** (slew_limit(st, MAX_F0_SLOPE * dt) / 12.0)


# --------------------------------------------------------------------------------------------- the larynx


def larynx_weight(segs: Segments, t: np.ndarray) -> np.ndarray:
    """How much the larynx follows the intonation at ``t``: 1 through the word (with a margin), 0 at rest."""
    speech_start, speech_end = speech_span(segs)
    inside = ((t >= speech_start - LARYNX_MARGIN_S) & (t <= speech_end + LARYNX_MARGIN_S)).astype(np.float64)
    dt = float(t[1] - t[0])
    return gaussian_filter1d(inside, LARYNX_EDGE_MS / 1000.0 / dt, mode="nearest")


def larynx_height(phrase: np.ndarray, segs: Segments, t: np.ndarray, speaker: SpeakerProsody,
                  rng: np.random.Generator) -> np.ndarray:
    """Vertical larynx (and hyoid) displacement from rest, mm (up positive): the phrase contour through the
    larynx's slower response at the speaker's mm per octave while the word is spoken, plus postural drift."""
    dt = float(t[1] - t[0])
    slow = gaussian_filter1d(phrase, LARYNX_SIGMA_MS / 1000.0 / dt, mode="nearest")
    sigma = LARYNX_DRIFT_MS / 1000.0 / dt
    # scaled by the filter's own gain (white noise through a Gaussian of sigma s has variance 1 / (2 s sqrt(pi))),
    # not by the sample s.d., which over a second of such slow noise would blow up its mean
    drift = gaussian_filter1d(rng.normal(0, 1, len(t)), sigma, mode="reflect") * np.sqrt(2.0 * sigma * np.sqrt(np.pi))
    drift = LARYNX_DRIFT_MM * drift
    return speaker.larynx_mm_per_octave / 12.0 * larynx_weight(segs, t) * slow + drift


def phrase_from_larynx(times: np.ndarray, height: np.ndarray, segs: Segments, t: np.ndarray,
                       speaker: SpeakerProsody) -> np.ndarray:
    """The phrase contour at ``t`` (semitones) read back from the larynx height seen at ``times`` (the MRI
    frames), with the phantom's own mapping; where the larynx rests (outside the word) the nearest reading
    is held. The drift cannot be told from intonation and stays in the estimate."""
    w = np.interp(times, t, larynx_weight(segs, t))
    ok = w > 0.25
    if not ok.any():
        return np.zeros_like(t)
    st = 12.0 * np.asarray(height)[ok] / (speaker.larynx_mm_per_octave * w[ok])
    return np.interp(t, np.asarray(times)[ok], st)
