"""Subject-disjoint splits: LOSO, k-fold by subject, holdout, validation carve-out."""

from __future__ import annotations

import pytest

from articulate.errors import InputError
from datamodules.splits import (
    carve_validation,
    holdout_subjects,
    kfold_by_subject,
    leave_one_subject_out,
    make_split,
    n_folds,
)

# 7 subjects with 1-3 recordings each, listed out of order (folds must not depend on the order).
SUBJECTS = ["s3", "s1", "s1", "s7", "s2", "s5", "s5", "s5", "s4", "s6", "s2"]
WORDS = ["a", "a", "b", "b", "a", "a", "a", "b", "b", "a", "a"]


def subjects_of(idx):
    return {SUBJECTS[i] for i in idx}


def test_loso_covers_every_subject_once_and_is_disjoint():
    names = sorted(set(SUBJECTS))
    assert n_folds(SUBJECTS, "loso") == len(names)
    seen = []
    for fold in range(len(names)):
        train, test = leave_one_subject_out(SUBJECTS, fold)
        assert subjects_of(test) == {names[fold]}  # fold k = k-th subject in sorted order
        assert not subjects_of(train) & subjects_of(test)
        assert sorted(train + test) == list(range(len(SUBJECTS)))  # every recording, once
        seen.append(names[fold])
    assert seen == names


@pytest.mark.parametrize("k", [2, 3, 7])
def test_kfold_partitions_subjects(k):
    tests = [kfold_by_subject(SUBJECTS, k, f, seed=4) for f in range(k)]
    all_test = [i for _, t in tests for i in t]
    assert sorted(all_test) == list(range(len(SUBJECTS)))  # each recording tested exactly once
    sizes = [len(subjects_of(t)) for _, t in tests]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 7
    for train, test in tests:
        assert not subjects_of(train) & subjects_of(test)
        assert sorted(train + test) == list(range(len(SUBJECTS)))


def test_kfold_deterministic_for_a_seed_and_seed_matters():
    a = [kfold_by_subject(SUBJECTS, 3, f, seed=1) for f in range(3)]
    assert a == [kfold_by_subject(SUBJECTS, 3, f, seed=1) for f in range(3)]
    groups = {s: [subjects_of(kfold_by_subject(SUBJECTS, 3, f, seed=s)[1]) for f in range(3)] for s in range(6)}
    assert len({str(sorted(map(sorted, g))) for g in groups.values()}) > 1


def test_fold_out_of_range_and_bad_k_are_clear():
    with pytest.raises(InputError, match=r"fold 7 is out of range: .* 7 folds \(0\.\.6\)"):
        leave_one_subject_out(SUBJECTS, 7)
    with pytest.raises(InputError, match="out of range"):
        leave_one_subject_out(SUBJECTS, -1)
    with pytest.raises(InputError, match=r"fold 3 is out of range: 3-fold"):
        kfold_by_subject(SUBJECTS, 3, 3)
    with pytest.raises(InputError, match="k >= 2"):
        kfold_by_subject(SUBJECTS, 1, 0)
    with pytest.raises(InputError, match="at least 8 subjects"):
        kfold_by_subject(SUBJECTS, 8, 0)
    with pytest.raises(InputError, match="at least 2 subjects"):
        leave_one_subject_out(["a", "a"], 0)
    with pytest.raises(InputError, match="no recordings"):
        leave_one_subject_out([], 0)


def test_validation_carve_out_count_fraction_and_strata():
    train, _ = leave_one_subject_out(SUBJECTS, 0)  # s1 is the test subject
    tr, val = carve_validation(SUBJECTS, train, 2, seed=0)
    assert len(subjects_of(val)) == 2 and not subjects_of(tr) & subjects_of(val)
    assert sorted(tr + val) == sorted(train)
    assert (tr, val) == carve_validation(SUBJECTS, train, 2, seed=0)
    _, val_frac = carve_validation(SUBJECTS, train, 0.5, seed=0)
    assert len(subjects_of(val_frac)) == 3  # round(0.5 * 6)
    assert carve_validation(SUBJECTS, train, 0, seed=0) == (sorted(train), [])
    # With strata, two validation subjects cover both words whatever the seed.
    label = {}
    for s, w in zip(SUBJECTS, WORDS):
        label.setdefault(s, []).append(w)
    major = {s: max(set(ws), key=ws.count) for s, ws in label.items()}
    for seed in range(10):
        _, v = carve_validation(SUBJECTS, train, 2, seed=seed, strata=WORDS)
        assert {major[s] for s in subjects_of(v)} == {"a", "b"}, seed
    with pytest.raises(InputError, match="none would be left"):
        carve_validation(SUBJECTS, train, 6)
    with pytest.raises(InputError, match="fraction"):
        carve_validation(SUBJECTS, train, 1.5)


def test_make_split_parts_are_disjoint_and_complete():
    for split, folds in (("loso", 7), ("kfold", 3)):
        for fold in range(folds):
            sp = make_split(SUBJECTS, split, fold=fold, k=3, val_subjects=2, seed=0, strata=WORDS)
            assert sorted(sp.train + sp.val + sp.test) == list(range(len(SUBJECTS)))
            parts = [set(sp.train_subjects), set(sp.val_subjects), set(sp.test_subjects)]
            assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1:])
            assert len(sp.val_subjects) == 2
            assert subjects_of(sp.train) == set(sp.train_subjects)
    hold = make_split(SUBJECTS, "holdout", test_subjects=2, val_subjects=1, seed=3)
    assert len(hold.test_subjects) == 2 and len(hold.val_subjects) == 1
    with pytest.raises(InputError, match="unknown split"):
        make_split(SUBJECTS, "random")


def test_holdout():
    train, test = holdout_subjects(SUBJECTS, 3, seed=2)
    assert len(subjects_of(test)) == 3 and not subjects_of(train) & subjects_of(test)
    assert (train, test) == holdout_subjects(SUBJECTS, 3, seed=2)
    with pytest.raises(InputError, match="no training subject"):
        holdout_subjects(SUBJECTS, 7)


# ---------------------------------------------------------------------------------------------
# speaker-dependent splits


def test_speaker_dependent_by_recording_keeps_every_speaker_in_every_part():
    from datamodules.splits import speaker_dependent_split

    subjects = ["a"] * 10 + ["b"] * 5
    parts = speaker_dependent_split(subjects, None, val_fraction=0.1, test_fraction=0.2, unit="recording", seed=3)
    idx = {k: [s.index for s in v] for k, v in parts.items()}
    assert sorted(idx["train"] + idx["val"] + idx["test"]) == list(range(15))  # each recording once
    assert all(s.start == 0 and s.stop is None for v in parts.values() for s in v)  # whole recordings
    for part in ("train", "val", "test"):
        assert {subjects[i] for i in idx[part]} == {"a", "b"}
    assert sum(subjects[i] == "a" for i in idx["test"]) == 2 and sum(subjects[i] == "b" for i in idx["test"]) == 1


def test_speaker_dependent_time_blocks_are_contiguous_and_disjoint():
    from datamodules.splits import speaker_dependent_split

    parts = speaker_dependent_split(["kid"], [1000], val_fraction=0.1, test_fraction=0.2, unit="time", min_length=8)
    (tr,), (va,), (te,) = parts["train"], parts["val"], parts["test"]
    assert (tr.start, tr.stop, va.start, va.stop, te.start, te.stop) == (0, 700, 700, 800, 800, 1000)
    # a block shorter than one clip is dropped rather than shared
    short = speaker_dependent_split(["kid"], [30], val_fraction=0.1, test_fraction=0.3, unit="time", min_length=8)
    assert short["val"] == [] and [(s.start, s.stop) for s in short["test"]] == [(21, 30)]


def test_speaker_dependent_auto_mixes_units_per_speaker():
    from datamodules.splits import speaker_dependent_split

    subjects, lengths = ["many"] * 4 + ["one"], [100] * 4 + [500]
    parts = speaker_dependent_split(subjects, lengths, unit="auto", min_length=4)
    one = [s for v in parts.values() for s in v if s.index == 4]
    assert len(one) == 3 and all(s.stop is not None for s in one)  # the one-recording speaker: time blocks
    assert all(s.stop is None for v in parts.values() for s in v if s.index < 4)


def test_one_speaker_under_a_speaker_disjoint_split_names_the_option():
    with pytest.raises(InputError, match="split: speaker_dependent"):
        make_split(["only"] * 4, split="holdout", test_subjects=1)
    with pytest.raises(InputError, match="split: speaker_dependent"):
        make_split(["only"] * 4, split="loso")
