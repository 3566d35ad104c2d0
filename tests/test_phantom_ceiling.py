"""The intonation ceilings of the mri2audio phantom (:mod:`articulate.phantom.ceilings`) and their CLI,
`articulate phantom ceiling`.

A tiny instance (2 recordings of the quick reproduction's 40-subject cohort, 1 crop, 2 draws of each kind) runs once
per module (~10 s on one core); the full-size figures come from the CLI (its defaults: 12 recordings, 4 crops, K=8).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from badinput_helpers import assert_ok, assert_refused, listing, run

from articulate.phantom import generate
from articulate.phantom.ceilings import (
    VERSIONS,
    PhantomRecording,
    intonation_ceilings,
    recording_subjects,
    stored,
)
from articulate.phantom.cohort import _mri_subject_words, _options

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(one_thread):
    return intonation_ceilings(subjects=40, recordings=2, crops=1, draws=2, seed=0)


def test_crop_starts_are_the_datamodules_eval_crops():
    import datamodules.mri2audio_items as items
    from articulate.phantom import ceilings

    assert ceilings.crop_starts is items.crop_starts  # one source: articulate.signal.crops
    assert items.crop_starts(24000, 21000, 1) == [1500]
    assert items.crop_starts(24000, 21000, 3) == [0, 1500, 3000]
    assert items.crop_starts(20000, 21000, 2) == [0, 0]


def test_recordings_spread_over_the_cohort_and_its_words():
    assert recording_subjects(40, 1) == [0]
    picks = recording_subjects(40, 12)
    assert picks[0] == 0 and picks[-1] == 39 and len(set(picks)) == 12
    words = _mri_subject_words(_options("mri2audio", 40, {}))
    assert [words[i] for i in picks].count("ageese") == 4  # the 28:12 word split, in its share
    assert len(set(recording_subjects(63, 63))) == 63


def test_the_reference_is_the_cohorts_recording_as_read_back(tmp_path):
    """Rebuilt subject + trajectory + synthesis reproduce the cohort's WAV sample for sample; F0 changes it."""
    from articulate.readers.audio import read_audio

    root = generate("mri2audio", tmp_path / "m", subjects=2, seed=3, quiet=True, workers=1)
    opts = _options("mri2audio", 2, {})
    for si, word in enumerate(_mri_subject_words(opts)):
        rec = PhantomRecording(3, si, word, opts)
        cohort = read_audio(root / f"{rec.id}.wav")[0]
        np.testing.assert_array_equal(stored(rec.render(), opts["sr"]), cohort)
        other = stored(rec.render(rec.intonation(0), (1, 0)), opts["sr"])
        assert other.shape == cohort.shape and not np.array_equal(other, cohort)
        assert not np.allclose(rec.intonation(0), rec.traj.f0) and np.array_equal(rec.intonation(1), rec.intonation(1))
        for draw in (rec.word_intonation, rec.larynx_intonation):
            assert np.array_equal(draw(1), draw(1)) and not np.array_equal(draw(0), draw(1))


def test_what_a_model_knows_of_the_intonation_orders_the_f0_error():
    """F0 read from the larynx is closer to the truth than the word's contour alone, which is closer than a blind
    draw; each is a contour of the recording's own length, as near the subject's mean F0 as the truth."""
    opts = _options("mri2audio", 40, {})
    words = _mri_subject_words(opts)
    err = {"larynx": [], "word": [], "redraw": []}
    for si in (0, 13, 26, 39):
        rec = PhantomRecording(0, si, words[si], opts)
        voiced = rec.traj.src["voicing"] > 0.5
        true = 12.0 * np.log2(rec.traj.f0[voiced])
        for name, draw in (("larynx", rec.larynx_intonation), ("word", rec.word_intonation),
                           ("redraw", rec.intonation)):
            for k in range(3):
                f0 = draw(k)
                assert f0.shape == rec.traj.f0.shape
                err[name].append(float(np.sqrt(np.mean((12.0 * np.log2(f0[voiced]) - true) ** 2))))
    rms = {k: float(np.mean(v)) for k, v in err.items()}
    assert rms["larynx"] < 0.8 and rms["larynx"] < 0.6 * rms["word"] and rms["word"] < 0.8 * rms["redraw"], rms


def test_result_has_the_documented_keys(tiny):
    assert set(tiny) == {"versions", "scores", "f0_rms_semitones", "recordings", "settings", "seconds"}
    assert tuple(tiny["versions"]) == VERSIONS == ("oracle", "noise", "larynx", "larynx_mean", "word", "word_mean",
                                                   "redraw", "mean", "flat")
    for name, row in tiny["versions"].items():
        assert set(row) == {"label", "corr2d", "pesq"}
        for metric in ("corr2d", "pesq"):
            assert set(row[metric]) == {"mean", "sd", "n", "failed"}
            drawn = name in ("larynx", "word", "redraw")
            assert row[metric]["n"] + row[metric]["failed"] == (4 if drawn else 2)  # recordings x crops x draws
            assert len(tiny["scores"][name][metric]) == row[metric]["n"] + row[metric]["failed"]
    assert tiny["recordings"] == ["S001/asouk", "S040/ageese"]
    assert {k: tiny["settings"][k] for k in ("subjects", "recordings", "crops", "draws", "seed")} == {
        "subjects": 40, "recordings": 2, "crops": 1, "draws": 2, "seed": 0}
    assert set(tiny["f0_rms_semitones"]) == {"larynx", "word", "redraw", "flat"}
    assert 0.2 < tiny["f0_rms_semitones"]["larynx"] < tiny["f0_rms_semitones"]["redraw"]
    json.dumps(tiny, allow_nan=False)  # strict JSON: a failed PESQ is None, not NaN


def test_oracle_is_exact_and_not_knowing_the_intonation_costs_pesq(tiny):
    v = {name: (row["corr2d"]["mean"], row["pesq"]["mean"]) for name, row in tiny["versions"].items()}
    assert v["oracle"][0] == pytest.approx(1.0, abs=1e-6)
    assert all(c < 1.0 - 1e-3 for name, (c, _) in v.items() if name != "oracle")
    assert v["redraw"][1] < v["oracle"][1] - 0.2, v
    assert v["flat"][1] < v["oracle"][1] - 0.2, v
    assert v["noise"][0] > v["redraw"][0], v  # the intonation costs more than the source noise alone


def test_seeing_the_larynx_lifts_the_ceiling(tiny):
    """The ordering the phantom is built for: the true F0 >= F0 read from the larynx > intonation-blind."""
    v = {name: (row["corr2d"]["mean"], row["pesq"]["mean"]) for name, row in tiny["versions"].items()}
    assert v["larynx_mean"][1] > v["mean"][1] + 0.2 and v["larynx"][1] > v["redraw"][1] + 0.2, v
    assert v["larynx"][0] > v["redraw"][0] and v["larynx_mean"][0] > v["mean"][0], v
    assert v["noise"][1] > v["larynx_mean"][1], v


@pytest.mark.parametrize("single, mean", [("redraw", "mean"), ("word", "word_mean"), ("larynx", "larynx_mean")])
def test_the_mean_of_the_draws_beats_a_single_draw(tiny, single, mean):
    """The mean mel is the L2-optimal prediction of what is left unknown: its Corr2D is at least that of the
    single draws."""
    avg, one = tiny["versions"][mean]["corr2d"]["mean"], tiny["versions"][single]["corr2d"]["mean"]
    assert avg >= one - 2e-3, (avg, one)
    draws = np.array(tiny["scores"][single]["corr2d"]).reshape(2, 2)  # [recording x crop, draw]
    assert np.all(np.array(tiny["scores"][mean]["corr2d"]) >= draws.mean(1) - 5e-3)


@pytest.mark.parametrize("argv, problem", [
    (["--draws", "0"], "--draws must be at least 1, got 0"),
    (["--crops", "-1"], "--crops must be at least 1, got -1"),
    (["--recordings", "41"], "ceiling option recordings (41) exceeds the cohort's 40 subjects"),
    (["--subjects", "0"], "--subjects must be at least 1, got 0"),
])
def test_cli_refuses_bad_values_in_one_line(argv, problem, tmp_path, capfd):
    res = run(capfd, "phantom", "ceiling", *argv, "--out", tmp_path / "ceiling.json")
    assert_refused(res, "phantom", problem)
    assert listing(tmp_path) == set()


def test_cli_refuses_a_folder_as_out_before_any_work(tmp_path, capfd):
    (tmp_path / "taken").mkdir()
    res = run(capfd, "phantom", "ceiling", "--out", tmp_path / "taken")
    assert_refused(res, "phantom", tmp_path / "taken", "is a folder; give a file name to write")


def test_cli_prints_the_table_and_writes_json_atomically(tiny, tmp_path, capfd, monkeypatch):
    import articulate.phantom.ceilings as ceilings

    calls = []
    monkeypatch.setattr(ceilings, "intonation_ceilings", lambda **kw: calls.append(kw) or tiny)
    out = tmp_path / "sub" / "ceiling.json"
    res = run(capfd, "phantom", "ceiling", "--recordings", "2", "--crops", "1", "--draws", "2", "--quiet", "--out", out)
    assert_ok(res)
    assert calls == [{"subjects": 40, "recordings": 2, "crops": 1, "draws": 2, "seed": 0, "log": None}]
    assert "| version | Corr2D mean ± sd | PESQ-wb mean ± sd | n crops |" in res.out
    assert "| oracle: GL(true mel) | 1.000 ± 0.000 |" in res.out
    assert "another intonation draw + fresh source noise (each of K=2)" in res.out
    assert json.loads(out.read_text()) == json.loads(json.dumps(tiny))
    assert listing(tmp_path) == {"sub", "sub/ceiling.json"}  # no temporary file left beside it
