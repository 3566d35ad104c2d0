"""Praat TextGrid annotations (AAA exports them beside each recording): interval and point tiers.

Both of Praat's text formats are read: the long one (``xmin = 0`` ... ``item [1]:``) and the
short one (values only, one per line). Each is a sequence of values (quoted strings, numbers,
``<exists>``) with decoration between them, so one tokeniser serves both: quoted strings (``""``
is an escaped quote), numbers and flags are kept, keys and bracketed indices (``item [1]``)
dropped. Files are UTF-8 (with or without BOM), UTF-16 (Praat's choice for non-ASCII text) or
Latin-1. Binary TextGrids are refused with a message saying how to convert them.

Transcript rule (:func:`words_tier`): the first interval tier named ``word``, ``words``, ``wrd``,
``ort``, ``orth``, ``orthography``, ``text``, ``transcript`` or ``transcription`` (any case), else
the first interval tier whose name contains ``word``, else the first interval tier. Its non-empty
labels, silence marks (``sil``, ``sp``, ``<sil>``, ``#`` ...) excepted, joined by spaces, are
the transcript (:func:`textgrid_words`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from articulate.errors import InputError

__all__ = [
    "Interval", "Point", "Tier", "TextGrid", "read_textgrid", "words_tier", "textgrid_words",
    "WORD_TIER_NAMES", "SILENCE_LABELS",
]

WORD_TIER_NAMES = ("word", "words", "wrd", "ort", "orth", "orthography", "text", "transcript", "transcription")
SILENCE_LABELS = frozenset({"", "sil", "sp", "spn", "pau", "<sil>", "<sp>", "#", "<p:>", "_", "{sil}", "{sp}"})

_TOKEN = re.compile(r'"((?:[^"]|"")*)"|\[[^\]\n]*\]|(<exists>|<absent>)|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)')


@dataclass
class Interval:
    xmin: float
    xmax: float
    text: str


@dataclass
class Point:
    time: float
    mark: str


@dataclass
class Tier:
    """``kind`` is ``"interval"`` (``items`` are :class:`Interval`) or ``"point"`` (:class:`Point`)."""

    name: str
    kind: str
    xmin: float
    xmax: float
    items: list = field(default_factory=list)


@dataclass
class TextGrid:
    xmin: float
    xmax: float
    tiers: list[Tier]
    path: Path | None = None

    def tier(self, name: str) -> Tier | None:
        return next((t for t in self.tiers if t.name == name), None)


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if len(raw) > 1 and raw[1:2] == b"\x00" and raw[:1] != b"\x00":  # UTF-16-LE without BOM
        return raw.decode("utf-16-le")
    if raw.startswith(b"ooBinaryFile"):
        raise InputError(path, "binary Praat TextGrid: save it from Praat as a text file (Save as text file...)")
    if b"\x00" in raw:
        raise InputError(path, "not a text TextGrid (binary data)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _Tokens:
    def __init__(self, path: Path, text: str):
        self.path = path
        self.items: list[tuple[str, str]] = []  # (kind, value): "s" string, "n" number, "f" flag
        for m in _TOKEN.finditer(text):
            if m.group(1) is not None:
                self.items.append(("s", m.group(1).replace('""', '"')))
            elif m.group(2) is not None:
                self.items.append(("f", m.group(2)))
            elif m.group(3) is not None:
                self.items.append(("n", m.group(3)))
        self.pos = 0

    def _next(self, what: str) -> tuple[str, str]:
        if self.pos >= len(self.items):
            raise InputError(self.path, f"TextGrid ends early (expected {what}): truncated file?")
        self.pos += 1
        return self.items[self.pos - 1]

    def string(self, what: str) -> str:
        kind, value = self._next(what)
        if kind != "s":
            raise InputError(self.path, f"malformed TextGrid: expected {what} (a quoted text), got {value!r}")
        return value

    def number(self, what: str) -> float:
        kind, value = self._next(what)
        if kind != "n":
            raise InputError(self.path, f"malformed TextGrid: expected {what} (a number), got {value!r}")
        return float(value)

    def count(self, what: str) -> int:
        value = self.number(what)
        if value != int(value) or value < 0:
            raise InputError(self.path, f"malformed TextGrid: {what} {value:g} is not a count")
        return int(value)

    def flag(self) -> str | None:
        if self.pos < len(self.items) and self.items[self.pos][0] == "f":
            self.pos += 1
            return self.items[self.pos - 1][1]
        return None


def read_textgrid(path: str | Path) -> TextGrid:
    """Read a Praat TextGrid (long or short text format); bad input raises ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "TextGrid file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(path, "empty TextGrid file")
    text = _decode(path, raw)
    if "chronological" in text[:200].lower():
        raise InputError(path, "chronological TextGrid format is not supported: save it from Praat as a (short) text file")
    tok = _Tokens(path, text)
    file_type, object_class = tok.string("File type"), tok.string("Object class")
    if file_type != "ooTextFile" or object_class != "TextGrid":
        raise InputError(path, f"not a Praat TextGrid (File type {file_type!r}, Object class {object_class!r})")
    xmin, xmax = tok.number("xmin"), tok.number("xmax")
    if tok.flag() == "<absent>":
        return TextGrid(xmin, xmax, [], path)
    tiers = []
    for t in range(tok.count("the number of tiers")):
        cls = tok.string(f"tier {t + 1} class")
        name = tok.string(f"tier {t + 1} name")
        t0, t1 = tok.number(f"tier {t + 1} xmin"), tok.number(f"tier {t + 1} xmax")
        n = tok.count(f"the number of items of tier {name!r}")
        if cls == "IntervalTier":
            items: list = []
            for i in range(n):
                a, b = tok.number(f"interval {i + 1} xmin of tier {name!r}"), tok.number(f"interval {i + 1} xmax of tier {name!r}")
                label = tok.string(f"interval {i + 1} text of tier {name!r}")
                if b < a:
                    raise InputError(path, f"tier {name!r} interval {i + 1} ends ({b:g} s) before it starts ({a:g} s)")
                items.append(Interval(a, b, label))
            _warn_overlaps(path, name, items)
            tiers.append(Tier(name, "interval", t0, t1, items))
        elif cls == "TextTier":
            items = [Point(tok.number(f"point {i + 1} time of tier {name!r}"), tok.string(f"point {i + 1} mark of tier {name!r}"))
                     for i in range(n)]
            tiers.append(Tier(name, "point", t0, t1, items))
        else:
            raise InputError(path, f"malformed TextGrid: tier {t + 1} has unknown class {cls!r} (IntervalTier or TextTier)")
    return TextGrid(xmin, xmax, tiers, path)


def _warn_overlaps(path: Path, name: str, items: list[Interval]) -> None:
    """Praat writes interval tiers as a partition; overlapping intervals (another tool's export) are read as
    given, with one warning line per tier."""
    from articulate import validate

    for i in range(1, len(items)):
        prev, cur = items[i - 1], items[i]
        if cur.xmin < prev.xmax - 1e-9:
            validate.warn(path, f"tier {name!r}: intervals {i} ({prev.xmin:g}-{prev.xmax:g} s) and {i + 1} "
                                f"({cur.xmin:g}-{cur.xmax:g} s) overlap; read as given")
            return


def words_tier(grid: TextGrid) -> Tier | None:
    """The tier holding the words (see the module docstring for the rule), or None without interval tiers."""
    intervals = [t for t in grid.tiers if t.kind == "interval"]
    for tier in intervals:
        if tier.name.strip().lower() in WORD_TIER_NAMES:
            return tier
    for tier in intervals:
        if "word" in tier.name.lower():
            return tier
    return intervals[0] if intervals else None


def textgrid_words(grid: TextGrid, start: float | None = None, stop: float | None = None) -> list[Interval]:
    """Word intervals of :func:`words_tier` (silence marks dropped), only those overlapping
    ``[start, stop)`` s when given."""
    tier = words_tier(grid)
    if tier is None:
        return []
    out = []
    for iv in tier.items:
        label = iv.text.strip()
        if label.lower() in SILENCE_LABELS:
            continue
        if start is not None and iv.xmax <= start:
            continue
        if stop is not None and iv.xmin >= stop:
            continue
        out.append(Interval(iv.xmin, iv.xmax, label))
    return out
