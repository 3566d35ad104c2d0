"""Intonation the images can show (:mod:`articulate.phantom.prosody`): the mri2audio phantom's F0 follows the word's
stereotyped contour, and the larynx in its MRI rises and falls with it.

The cohort-level checks measure both sides from the files, independently of the ground truth: the larynx's height
from the MRI frames (the vertical shift of a window over the larynx, :func:`realism.recording_larynx_f0`), F0 from
the WAV (pYIN). One small cohort (2 speakers x 2 words x 2 repetitions) serves the module.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from articulate.phantom import generate, prosody, realism
from articulate.phantom.anatomy import sample_subject
from articulate.phantom.cohort import mri_prosody, phantom_key
from articulate.phantom.trajectories import load_trajectory, make_trajectory

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, one_thread):
    return generate("mri2audio", tmp_path_factory.mktemp("prosody") / "cohort", subjects=2, seed=3, quiet=True,
                    workers=1, words=["asouk"], extra_words=["ageese"], repetitions=2)


def _speaker(traj_path) -> dict:
    with np.load(traj_path) as z:
        return json.loads(str(z["speaker_prosody"]))


# --------------------------------------------------------------------------------------------- the model


def test_word_contour_is_shared_and_a_repetition_varies_it_a_little():
    word_a, speaker = mri_prosody(0, 0, "asouk")
    assert mri_prosody(0, 7, "asouk")[0] == word_a  # every speaker says the word's contour
    assert mri_prosody(0, 0, "ageese")[0] != word_a and mri_prosody(1, 0, "asouk")[0] != word_a
    assert mri_prosody(0, 0, "ageese")[1] == speaker != mri_prosody(0, 1, "asouk")[1]  # one speaker, any word
    takes = [prosody.take_contour(word_a, speaker, np.random.default_rng(k)) for k in range(50)]
    keys = np.array([c.key for c in takes])
    assert abs(keys.mean() - speaker.key) < 0.15 and 0.2 < keys.std() < 0.4  # the speaker's key, small jitter
    amps = np.array([c.accents[0][0] / word_a.accents[0][0] for c in takes])
    assert 0.85 < amps.mean() < 1.15 and amps.std() < 0.15
    assert all(np.sign(c.boundary) == np.sign(word_a.boundary) for c in takes)


def test_larynx_height_follows_the_phrase_at_the_speakers_gain_and_reads_back():
    subject = sample_subject(np.random.default_rng([2, 0]), "s")
    word = prosody.draw_word_contour(np.random.default_rng(1), 1)
    speaker = prosody.SpeakerProsody(key=0.5, span=1.0, peak_shift=0.0, larynx_mm_per_octave=8.0)
    traj = make_trajectory("asouk", subject, np.random.default_rng(3), duration_s=1.4, lead_s=(0.4, 0.45),
                           fill=(0.5, 0.55), prosody=(word, speaker))
    phrase, t = traj.extra["phrase_st"].astype(np.float64), traj.t
    speech = (t > traj.segments[1][1]) & (t < traj.segments[-1][1])
    # during the word: 8 mm per octave of the phrase contour (plus a sub-pixel drift)
    slope = np.polyfit(phrase[speech] / 12.0, traj.larynx_mm[speech], 1)[0]
    assert slope == pytest.approx(8.0, rel=0.1)
    assert np.ptp(phrase[speech]) > 5.0  # semitones: a word's accent and fall
    assert np.ptp(traj.larynx_mm[speech]) == pytest.approx(8.0 / 12.0 * np.ptp(phrase[speech]), rel=0.15)
    rest = t < traj.segments[1][1] - 0.3
    assert rest.sum() > 50 and np.abs(traj.larynx_mm[rest]).max() < 0.6  # at rest before it
    # read back from 26 frames, it is the phrase contour within a fraction of a semitone where voiced
    times = (np.arange(36) + 0.5) * traj.duration / 36  # frames 39 ms apart, as the cohort's
    segs = [(p, s, e, False) for p, s, e in traj.segments]
    back = prosody.phrase_from_larynx(times, np.interp(times, t, traj.larynx_mm), segs, t, speaker)
    voiced = traj.src["voicing"] > 0.5
    assert np.sqrt(np.mean((back[voiced] - phrase[voiced]) ** 2)) < 0.6
    # F0 is that contour plus microprosody and wander: it tracks the larynx too
    st = 12.0 * np.log2(traj.f0 / subject.f0_hz)
    assert np.corrcoef(st[speech], traj.larynx_mm[speech])[0, 1] > 0.9


def test_free_speech_keeps_its_intonation_and_a_resting_larynx():
    """Without a word list's prosody (the wav2uti prompts) nothing moves the larynx, and wav2uti keeps version 4's
    cache key (its files came out byte for byte the same when mri2audio's version 5 was made)."""
    subject = sample_subject(np.random.default_rng([2, 1]), "s")
    traj = make_trajectory("we see two geese", subject, np.random.default_rng(4), lead_s=(0.4, 0.5))
    assert traj.larynx_mm is None and "larynx" not in traj.at(np.array([0.5]))
    assert phantom_key("wav2uti", 44, 0) == "wav2uti-e135d34961"  # version 4's key: cached cohorts stay valid


# --------------------------------------------------------------------------------------------- the files


def test_the_larynx_in_the_mri_tracks_the_f0_of_the_wav(cohort):
    """Measured from the images and the sound alone: the larynx rises and falls with F0, by the speaker's
    millimetres per octave (5-10 mm, below the 11-30 mm of sustained phonation across the range)."""
    ratios, corrs = [], []
    for path in sorted(cohort.rglob("*.traj.npz")):
        m = realism.recording_larynx_f0(path)
        gain = _speaker(path)["larynx_mm_per_octave"]
        assert 5.0 <= gain <= 10.0
        assert np.isfinite(m["octaves"]).sum() >= 6  # voiced frames
        tr = load_trajectory(path)  # the measured heights are the true ones, to a fraction of a pixel
        true = np.interp(tr.extra["frame_times"], tr.t, tr.larynx_mm)
        assert np.sqrt(np.mean(((m["height_mm"] - m["height_mm"][0]) - (true - true[0])) ** 2)) < 0.5
        ratios.append(m["mm_per_octave"] / gain)
        corrs.append(m["corr"])
    print(f"\nlarynx height vs F0: corr {np.round(corrs, 2)}, measured / set mm per octave {np.round(ratios, 2)}")
    assert np.median(corrs) > 0.9 and min(corrs) > 0.7, corrs
    assert 0.8 < np.median(ratios) < 1.2 and min(ratios) > 0.5, ratios


def _contour(path, n: int = 40) -> np.ndarray:
    """The pYIN contour (semitones) from the first to the last voiced frame, gaps bridged, resampled to ``n``."""
    from articulate.readers.audio import read_audio

    wav, sr = read_audio(path)
    f0 = realism.f0_track(wav, sr, gate_db=-12.0)
    idx = np.nonzero(np.isfinite(f0))[0]
    st = 12.0 * np.log2(f0[idx[0]: idx[-1] + 1])
    x = np.arange(len(st))
    ok = np.isfinite(st)
    st = np.interp(x, x[ok], st[ok])
    return np.interp(np.linspace(0, len(st) - 1, n), x, st)


def test_a_words_f0_contour_is_shared_across_its_repetitions(cohort):
    """The same word's contours (pYIN, offset removed) agree across repetitions and speakers, more than two words'
    do. Drawn afresh per recording (phantom version 4), repetitions of a word agreed at corr ~0.8 (RMS ~1.3 st)."""
    contours = {p.relative_to(cohort).with_suffix("").as_posix(): _contour(p) for p in sorted(cohort.rglob("*.wav"))}
    same, other = [], []
    for (a, ca), (b, cb) in itertools.combinations(contours.items(), 2):
        word_a, word_b = a.split("/")[1].rsplit("_", 1)[0], b.split("/")[1].rsplit("_", 1)[0]
        rms = float(np.sqrt(np.mean(((ca - ca.mean()) - (cb - cb.mean())) ** 2)))
        (same if word_a == word_b else other).append((np.corrcoef(ca, cb)[0, 1], rms))
    same_a, other_a = np.array(same), np.array(other)
    print(f"\nF0 contours, same word: corr {same_a[:, 0].mean():.3f}, RMS {same_a[:, 1].mean():.2f} st ({len(same)} "
          f"pairs); different words: corr {other_a[:, 0].mean():.3f}, RMS {other_a[:, 1].mean():.2f} st "
          f"({len(other)} pairs)")
    assert same_a[:, 0].mean() > 0.9 and same_a[:, 1].mean() < 1.0, same_a
    assert same_a[:, 0].mean() > other_a[:, 0].mean() and same_a[:, 1].mean() < other_a[:, 1].mean()
