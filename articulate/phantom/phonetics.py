"""Phoneme inventory, articulatory targets, the vocabulary and the articulator -> formant map.

Articulators are normalised to [0, 1] so that anatomy (mm) and voice (Hz) can be scaled per subject:

- ``jaw``        jaw opening (0 closed, 1 wide open)
- ``tb_height``  tongue-body (dorsum) height relative to the jaw
- ``tb_back``    tongue-body backness (0 front, 1 back)
- ``tt_height``  tongue-tip raising (1 = contact with the alveolar ridge)
- ``lip_round``  lip rounding / protrusion
- ``lip_close``  lip closure (1 = lips sealed)
- ``velum``      velum lowering (1 = nasal port open)

A consonant specifies only the articulators it needs; the others are ``None`` and are filled by
coarticulation with the neighbouring vowels (Ohman-style), which is what makes /g/ in "ageese"
front and /k/ in "asouk" back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ARTICULATORS: tuple[str, ...] = ("jaw", "tb_height", "tb_back", "tt_height", "lip_round", "lip_close", "velum")
SOURCES: tuple[str, ...] = ("voicing", "frication", "aspiration", "closure", "nasal", "loudness")


@dataclass(frozen=True)
class Phoneme:
    symbol: str
    kind: str  # vowel, stop, fricative, nasal, approximant, aspiration, silence
    targets: dict[str, float] = field(default_factory=dict)
    duration_ms: float = 80.0
    voiced: bool = True
    frication: float = 0.0  # frication-noise amplitude during the segment
    fric_hz: float = 0.0  # centre of the frication band for a 17.5 cm vocal tract
    fric_bw: float = 0.0
    burst_hz: float = 0.0  # stop release burst centre (0: no burst)


def _v(symbol: str, jaw: float, h: float, b: float, r: float, dur: float = 110.0) -> Phoneme:
    return Phoneme(symbol, "vowel", {"jaw": jaw, "tb_height": h, "tb_back": b, "lip_round": r, "tt_height": 0.15,
                                     "lip_close": 0.0, "velum": 0.0}, dur)


PHONEMES: dict[str, Phoneme] = {p.symbol: p for p in [
    _v("i", 0.15, 0.95, 0.05, 0.0),
    _v("I", 0.25, 0.80, 0.20, 0.0, 80),
    _v("e", 0.35, 0.65, 0.15, 0.0),
    _v("E", 0.50, 0.50, 0.20, 0.0, 90),
    _v("ae", 0.80, 0.25, 0.25, 0.0),
    _v("a", 0.90, 0.10, 0.65, 0.1),
    _v("o", 0.45, 0.55, 0.85, 0.75),
    _v("u", 0.20, 0.85, 0.95, 1.0),
    _v("@", 0.45, 0.45, 0.50, 0.2, 60),
    # stops: closure is silent (voiceless) or carries a voice bar (voiced); burst at release
    Phoneme("p", "stop", {"lip_close": 1.0, "jaw": 0.25, "velum": 0.0}, 75, False, burst_hz=800),
    Phoneme("b", "stop", {"lip_close": 1.0, "jaw": 0.25, "velum": 0.0}, 65, True, burst_hz=800),
    Phoneme("t", "stop", {"tt_height": 1.0, "jaw": 0.2, "lip_close": 0.0, "velum": 0.0}, 70, False, burst_hz=4500),
    Phoneme("d", "stop", {"tt_height": 1.0, "jaw": 0.2, "lip_close": 0.0, "velum": 0.0}, 60, True, burst_hz=4000),
    Phoneme("k", "stop", {"tb_height": 1.0, "tt_height": 0.1, "lip_close": 0.0, "velum": 0.0}, 75, False,
            burst_hz=2200),
    Phoneme("g", "stop", {"tb_height": 1.0, "tt_height": 0.1, "lip_close": 0.0, "velum": 0.0}, 65, True,
            burst_hz=2000),
    # fricatives: the tongue tip sits just short of contact so that the channel hisses
    Phoneme("s", "fricative", {"tt_height": 0.85, "jaw": 0.15, "lip_close": 0.0, "velum": 0.0}, 115, False,
            frication=1.0, fric_hz=6000, fric_bw=2500),
    Phoneme("z", "fricative", {"tt_height": 0.85, "jaw": 0.15, "lip_close": 0.0, "velum": 0.0}, 90, True,
            frication=0.6, fric_hz=6000, fric_bw=2500),
    Phoneme("sh", "fricative", {"tt_height": 0.7, "tb_height": 0.7, "tb_back": 0.3, "lip_round": 0.6, "jaw": 0.15,
                                "lip_close": 0.0, "velum": 0.0}, 120, False, frication=1.0, fric_hz=3200,
            fric_bw=1800),
    Phoneme("f", "fricative", {"lip_close": 0.8, "jaw": 0.2, "velum": 0.0}, 100, False, frication=0.35,
            fric_hz=5000, fric_bw=5000),
    Phoneme("v", "fricative", {"lip_close": 0.8, "jaw": 0.2, "velum": 0.0}, 80, True, frication=0.2, fric_hz=5000,
            fric_bw=5000),
    Phoneme("m", "nasal", {"lip_close": 1.0, "jaw": 0.25, "velum": 1.0}, 75, True),
    Phoneme("n", "nasal", {"tt_height": 1.0, "jaw": 0.2, "velum": 1.0, "lip_close": 0.0}, 70, True),
    Phoneme("l", "approximant", {"tt_height": 1.0, "tb_height": 0.4, "tb_back": 0.45, "velum": 0.0,
                                 "lip_close": 0.0}, 65, True),
    Phoneme("w", "approximant", {"lip_round": 1.0, "lip_close": 0.55, "tb_height": 0.8, "tb_back": 0.9,
                                 "velum": 0.0}, 60, True),
    Phoneme("j", "approximant", {"tb_height": 0.95, "tb_back": 0.05, "tt_height": 0.2, "lip_close": 0.0,
                                 "velum": 0.0}, 60, True),
    Phoneme("h", "aspiration", {"lip_close": 0.0, "velum": 0.0}, 70, False),
    # H: aspiration after a voiceless stop release (inserted automatically)
    Phoneme("H", "aspiration", {}, 45, False),
    Phoneme("sil", "silence", {"jaw": 0.15, "tb_height": 0.45, "tb_back": 0.5, "tt_height": 0.1, "lip_round": 0.2,
                               "lip_close": 0.7, "velum": 0.6}, 150, False),
]}

# Orthography -> phonemes. Stress is marked with a trailing "'" on the stressed vowel.
LEXICON: dict[str, list[str]] = {
    "asouk": ["@", "s", "u'", "k"],
    "ageese": ["@", "g", "i'", "s"],
    "a": ["a'"], "ee": ["i'"], "oo": ["u'"], "eh": ["e'"], "oh": ["o'"],
    "see": ["s", "i'"], "sue": ["s", "u'"], "two": ["t", "u'"], "tea": ["t", "i'"], "key": ["k", "i'"],
    "go": ["g", "o'"], "shoe": ["sh", "u'"], "she": ["sh", "i'"], "bee": ["b", "i'"], "do": ["d", "u'"],
    "geese": ["g", "i'", "s"], "goose": ["g", "u'", "s"], "top": ["t", "a'", "p"], "guy": ["g", "a'", "j"],
    "papa": ["p", "a'", "p", "@"], "mama": ["m", "a'", "m", "@"], "noon": ["n", "u'", "n"],
    "lake": ["l", "e'", "k"], "we": ["w", "i'"], "who": ["h", "u'"], "saw": ["s", "a'"],
    "cat": ["k", "ae'", "t"], "the": ["d", "@"], "a_": ["@"], "took": ["t", "u'", "k"],
    "seek": ["s", "i'", "k"], "sock": ["s", "a'", "k"], "soup": ["s", "u'", "p"],
}

VOWEL_PROMPTS: tuple[str, ...] = ("a", "ee", "oo", "eh", "oh")
WORD_PROMPTS: tuple[str, ...] = ("asouk", "ageese", "see", "two", "key", "go", "shoe", "geese", "top", "papa",
                                 "noon", "lake", "seek", "sock", "soup", "cat", "mama", "took")
SENTENCE_PROMPTS: tuple[str, ...] = (
    "we see two geese", "the cat took a_ sock", "go seek the soup", "she saw a_ lake",
    "mama took the key", "who saw the goose", "papa see the top", "do see the cat",
)


def word_phonemes(words: str) -> list[tuple[str, bool]]:
    """Phoneme symbols with stress flags for a space-separated prompt (KeyError for unknown words)."""
    out: list[tuple[str, bool]] = []
    for word in words.split():
        for ph in LEXICON[word]:
            out.append((ph.rstrip("'"), ph.endswith("'")))
    return out


def prompt_text(words: str) -> str:
    """The orthographic prompt written to transcripts ("a_" is the article "a")."""
    return " ".join(w.rstrip("_") for w in words.split())


def formants(art: dict[str, np.ndarray], scale: float = 1.0) -> np.ndarray:
    """F1-F5 (Hz) [5, T] from articulator trajectories; ``scale`` = 17.5 cm / vocal-tract length.

    A low-dimensional articulatory-to-acoustic map (after Fant's nomograms): F1 rises with
    jaw opening and tongue lowering and falls with any constriction (tip, lips); F2 follows
    tongue frontness, more so when the tongue is high; rounding lowers F2/F3.
    """
    jaw, h, b = art["jaw"], art["tb_height"], art["tb_back"]
    tt, r, lc = art["tt_height"], art["lip_round"], art["lip_close"]
    openness = 0.6 * jaw + 0.4 * (1.0 - h)
    f1 = 240.0 + 560.0 * openness - 60.0 * r - 120.0 * lc - 90.0 * np.clip(tt - 0.3, 0, None)
    f2 = 800.0 + 1550.0 * (1.0 - b) * (0.55 + 0.45 * h) - 150.0 * r - 250.0 * lc + 150.0 * tt * (1 - b)
    f3 = 2450.0 + 550.0 * (1.0 - b) * h - 250.0 * r - 150.0 * lc + 100.0 * tt
    f4 = 3500.0 + 150.0 * (1.0 - b) - 100.0 * r + 0.0 * jaw
    f5 = 4500.0 + 0.0 * jaw
    f = np.stack([f1, f2, f3, f4, f5]) * scale
    f[0] = np.maximum(f[0], 180.0 * scale)
    f[1] = np.maximum(f[1], f[0] + 250.0)
    f[2] = np.maximum(f[2], f[1] + 350.0)
    f[3] = np.maximum(f[3], f[2] + 400.0)
    f[4] = np.maximum(f[4], f[3] + 500.0)
    return f.astype(np.float64)
