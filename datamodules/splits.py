"""Subject-disjoint train / validation / test splits over a list of recordings.

Every function takes ``subjects``: one subject (speaker) label per recording, in the order of the
caller's recording list, and returns sorted recording indices into that list, so any DataModule
(MRI, ultrasound) can use them. A subject's recordings always land in one part: models are
evaluated on people they have never seen, as in the papers (leave-one-subject-out for mri2audio,
held-out speakers for wav2uti).

Folds are defined over the *sorted* unique subject names, so fold numbers mean the same thing on
every machine and do not depend on the recording order; random choices draw from
``numpy.random.default_rng(seed)`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from articulate.errors import InputError

__all__ = [
    "Split", "Span", "unique_subjects", "leave_one_subject_out", "kfold_by_subject", "holdout_subjects",
    "carve_validation", "make_split", "n_folds", "speaker_dependent_split", "describe_split",
]

SPEAKER_DEPENDENT_HINT = ("for one speaker (or a few), use split: speaker_dependent (train and test on different "
                          "utterances, or time blocks, of the same speakers)")


@dataclass(frozen=True)
class Split:
    """Recording indices of each part and the subjects behind them."""

    train: list[int]
    val: list[int]
    test: list[int]
    train_subjects: list[str] = field(default_factory=list)
    val_subjects: list[str] = field(default_factory=list)
    test_subjects: list[str] = field(default_factory=list)

    def check_disjoint(self) -> None:
        """Raise if a subject or a recording appears in two parts (a bug, not a user error)."""
        parts = {"train": self.train_subjects, "val": self.val_subjects, "test": self.test_subjects}
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = set(parts[a]) & set(parts[b])
                if both:
                    raise AssertionError(f"subjects {sorted(both)} are in both {a} and {b}")
        idx = [*self.train, *self.val, *self.test]
        if len(idx) != len(set(idx)):
            raise AssertionError("a recording is in two parts of the split")


def unique_subjects(subjects: Sequence[str]) -> list[str]:
    """Sorted distinct subject labels (labels compared as strings)."""
    if len(subjects) == 0:
        raise InputError(None, "no recordings to split")
    return sorted({str(s) for s in subjects})


def _indices(subjects: Sequence[str], chosen: set[str]) -> list[int]:
    return [i for i, s in enumerate(subjects) if str(s) in chosen]


def _check_fold(fold: int, n: int, what: str) -> None:
    if not 0 <= int(fold) < n:
        raise InputError(None, f"fold {fold} is out of range: {what} has {n} folds (0..{n - 1})")


def leave_one_subject_out(subjects: Sequence[str], fold: int) -> tuple[list[int], list[int]]:
    """(train, test) indices with the ``fold``-th subject (sorted order) as the test subject."""
    names = unique_subjects(subjects)
    if len(names) < 2:
        raise InputError(None, f"leave-one-subject-out needs at least 2 subjects, the data has {len(names)}; "
                               + SPEAKER_DEPENDENT_HINT)
    _check_fold(fold, len(names), f"leave-one-subject-out over {len(names)} subjects")
    test = {names[int(fold)]}
    return _indices(subjects, set(names) - test), _indices(subjects, test)


def kfold_by_subject(subjects: Sequence[str], k: int, fold: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, test) indices for fold ``fold`` of ``k`` subject groups.

    Subjects are shuffled with ``seed`` and dealt into ``k`` groups whose sizes differ by at most
    one (``numpy.array_split``); group ``fold`` is the test part.
    """
    names = unique_subjects(subjects)
    if int(k) < 2:
        raise InputError(None, f"k-fold by subject needs k >= 2, got k={k}")
    if int(k) > len(names):
        raise InputError(None, f"k={k} folds need at least {k} subjects, the data has {len(names)}"
                               + ("; " + SPEAKER_DEPENDENT_HINT if len(names) < 3 else ""))
    _check_fold(fold, int(k), f"{k}-fold by subject")
    order = np.random.default_rng(seed).permutation(len(names))
    groups = np.array_split(order, int(k))
    test = {names[i] for i in groups[int(fold)]}
    return _indices(subjects, set(names) - test), _indices(subjects, test)


def holdout_subjects(subjects: Sequence[str], n_test: int | float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, test) indices with ``n_test`` subjects (a count, or a fraction in (0, 1)) held out at random."""
    names = unique_subjects(subjects)
    n = _count(n_test, len(names), "test")
    if n >= len(names):
        raise InputError(None, f"cannot hold out {n} test subjects of {len(names)}: no training subject would remain"
                               + ("; " + SPEAKER_DEPENDENT_HINT if len(names) < 3 else ""))
    chosen = {names[i] for i in np.random.default_rng(seed).choice(len(names), size=n, replace=False)} if n else set()
    return _indices(subjects, set(names) - chosen), _indices(subjects, chosen)


def _count(spec: int | float, total: int, what: str) -> int:
    """A subject count from an int, or a fraction of ``total`` (rounded, at least 1 when > 0)."""
    if isinstance(spec, bool):
        raise InputError(None, f"{what} subjects must be a count or a fraction, got {spec!r}")
    if isinstance(spec, float) and not float(spec).is_integer():
        if not 0.0 < spec < 1.0:
            raise InputError(None, f"a fraction of {what} subjects must be in (0, 1), got {spec}")
        return max(1, int(round(spec * total)))
    n = int(spec)
    if n < 0:
        raise InputError(None, f"the number of {what} subjects cannot be negative, got {n}")
    return n


def carve_validation(
    subjects: Sequence[str], train: Sequence[int], n_val: int | float, seed: int = 0,
    strata: Sequence[str] | None = None,
) -> tuple[list[int], list[int]]:
    """Move ``n_val`` whole subjects (a count, or a fraction of the training subjects) out of ``train``.

    Returns (train, val). With ``strata`` (one label per recording, e.g. the utterance), the chosen
    subjects alternate between strata so that a small validation set is not all one word; a
    subject's stratum is its most frequent label.
    """
    train = sorted(int(i) for i in train)
    names = sorted({str(subjects[i]) for i in train})
    n = _count(n_val, len(names), "validation")
    if n == 0:
        return train, []
    if n >= len(names):
        raise InputError(
            None, f"cannot take {n} validation subjects from {len(names)} training subjects: none would be left to train on"
            + ("; " + SPEAKER_DEPENDENT_HINT if len(names) < 3 else "")
        )
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    if strata is not None:
        label: dict[str, str] = {}
        for s in order:
            labels = [str(strata[i]) for i in train if str(subjects[i]) == s]
            values, counts = np.unique(labels, return_counts=True)
            label[s] = str(values[np.argmax(counts)])
        queues: dict[str, list[str]] = {}
        for s in order:
            queues.setdefault(label[s], []).append(s)
        # Round-robin over strata in the (random) order each stratum first appears.
        interleaved: list[str] = []
        while any(queues.values()):
            for q in queues.values():
                if q:
                    interleaved.append(q.pop(0))
        order = interleaved
    val_names = set(order[:n])
    val = [i for i in train if str(subjects[i]) in val_names]
    return [i for i in train if str(subjects[i]) not in val_names], val


def n_folds(subjects: Sequence[str], split: Literal["loso", "kfold"], k: int = 5) -> int:
    """How many folds ``split`` has for these subjects."""
    if split == "loso":
        return len(unique_subjects(subjects))
    if split == "kfold":
        return int(k)
    raise InputError(None, f"unknown split {split!r}; choose 'loso' or 'kfold'")


def make_split(
    subjects: Sequence[str], split: Literal["loso", "kfold", "holdout"] = "loso", fold: int = 0, k: int = 5,
    val_subjects: int | float = 0, seed: int = 0, test_subjects: int | float = 1,
    strata: Sequence[str] | None = None,
) -> Split:
    """Train / validation / test indices: the test part from ``split`` (``loso``: fold = the test
    subject's rank; ``kfold``: fold of ``k`` seeded subject groups; ``holdout``: ``test_subjects``
    random subjects), then ``val_subjects`` carved out of the training subjects."""
    if split == "loso":
        train, test = leave_one_subject_out(subjects, fold)
    elif split == "kfold":
        train, test = kfold_by_subject(subjects, k, fold, seed)
    elif split == "holdout":
        train, test = holdout_subjects(subjects, test_subjects, seed)
    else:
        raise InputError(None, f"unknown split {split!r}; choose 'loso', 'kfold' or 'holdout'")
    # A different stream from the fold's shuffle so validation picks do not mirror test picks.
    train, val = carve_validation(subjects, train, val_subjects, seed=seed + 1_000_003, strata=strata)

    def names(idx: list[int]) -> list[str]:
        return sorted({str(subjects[i]) for i in idx})

    out = Split(train, val, test, names(train), names(val), names(test))
    out.check_disjoint()
    return out


# ---------------------------------------------------------------------------------------------
# Speaker-dependent splits: train and test on different data of the same speakers.


@dataclass(frozen=True)
class Span:
    """Part of recording ``index``: frames ``[start, stop)`` (``stop`` None: to the end)."""

    index: int
    start: int = 0
    stop: int | None = None


def _n_of(fraction: float, n: int, at_least_one: bool) -> int:
    k = int(round(fraction * n))
    return max(k, 1) if (at_least_one and fraction > 0) else k


def speaker_dependent_split(
    subjects: Sequence[str], lengths: Sequence[int] | None = None, val_fraction: float = 0.1,
    test_fraction: float = 0.2, unit: Literal["auto", "recording", "time"] = "auto", seed: int = 0,
    min_length: int = 1,
) -> dict[str, list[Span]]:
    """Train / validation / test parts within each speaker (the usual protocol of single-speaker corpora).

    ``unit="recording"``: each speaker's recordings are shuffled (``seed``) and ``test_fraction`` /
    ``val_fraction`` of them (at least one each when the speaker has three or more) become test /
    validation recordings: whole utterances, never shared. ``unit="time"`` (needs ``lengths``, the
    frame counts): every recording is cut into contiguous blocks, training first, then validation
    (``val_fraction`` of its frames), then test (the last ``test_fraction``): windows inside disjoint
    blocks never overlap. ``"auto"``: by recording for speakers with at least three recordings, by
    time for the others. Blocks shorter than ``min_length`` frames (one clip) are dropped.
    """
    if not 0 <= val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise InputError(None, f"speaker_dependent split: need 0 <= val_fraction, 0 < test_fraction and their sum < 1, "
                               f"got {val_fraction} and {test_fraction}")
    if unit not in ("auto", "recording", "time"):
        raise InputError(None, f"split.unit must be 'auto', 'recording' or 'time', got {unit!r}")
    if unit != "recording" and lengths is None:
        raise ValueError("time blocks need the recordings' lengths")
    parts: dict[str, list[Span]] = {"train": [], "val": [], "test": []}
    for name in unique_subjects(subjects):
        mine = [i for i, s in enumerate(subjects) if str(s) == name]
        by_recording = unit == "recording" or (unit == "auto" and len(mine) >= 3)
        if by_recording:
            order = [mine[j] for j in np.random.default_rng([seed, len(mine)]).permutation(len(mine))]
            many = len(order) >= 3
            n_test = _n_of(test_fraction, len(order), many)
            n_val = _n_of(val_fraction, len(order), many)
            n_val = min(n_val, len(order) - n_test - 1) if len(order) > n_test else 0
            parts["test"] += [Span(i) for i in order[:n_test]]
            parts["val"] += [Span(i) for i in order[n_test:n_test + n_val]]
            parts["train"] += [Span(i) for i in order[n_test + n_val:]]
            continue
        for i in mine:
            n = int(lengths[i])
            b = n - int(round(test_fraction * n))
            a = b - int(round(val_fraction * n))
            for part, (lo, hi) in (("train", (0, a)), ("val", (a, b)), ("test", (b, n))):
                if hi - lo >= max(min_length, 1):
                    parts[part].append(Span(i, lo, hi))
    for part in parts:
        parts[part].sort(key=lambda s: (s.index, s.start))
    if not parts["test"]:
        raise InputError(None, "speaker_dependent split: no test data (recordings too few or too short for "
                               f"test_fraction {test_fraction}); raise test_fraction or use split.unit: time")
    return parts


def describe_split(split: str, **info) -> str:
    """The split's name as logs and tables print it."""
    if split == "speaker_dependent":
        return (f"speaker-dependent (each speaker's data split by {info.get('unit', 'auto')}: "
                f"{info.get('test_fraction')} test, {info.get('val_fraction')} validation)")
    names = {"loso": "speaker-disjoint, leave-one-subject-out", "kfold": "speaker-disjoint, k-fold by subject",
             "holdout": "speaker-disjoint, held-out speakers"}
    return names.get(split, split)
