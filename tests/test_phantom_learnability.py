"""The phantom's pairing is learnable: simple ridge regressions beat mean baselines on held-out subjects.

Reduced cohorts keep this fast; the full-cohort figures are in the phantom's report
(``articulate.phantom.learnability.learnability(kind, root)`` on a default cohort).
"""

from __future__ import annotations

import pytest

from articulate.phantom import generate
from articulate.phantom.learnability import audio_to_ultrasound, corr2, mri_to_mel


def test_corr2_matches_its_definition():
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    assert corr2(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert corr2(a, 3 * a + 1) == pytest.approx(1.0)


def test_mri_predicts_mel_better_than_the_utterance_mean(tmp_path):
    # 16 subjects, two held out per fold (the margin is +0.07 to +0.10 over seeds 11-13)
    root = generate("mri2audio", tmp_path / "m", subjects=16, seed=11, quiet=True)
    res = mri_to_mel(root, folds=8)
    assert res["subjects"] == 16
    assert res["ridge_corr2d"] > res["utterance_mean_corr2d"] + 0.04, res


def test_audio_predicts_ultrasound_better_than_mean_frames(tmp_path):
    # reduced geometry and frame rate keep the test fast; leave-one-speaker-out over 8 speakers
    root = generate("wav2uti", tmp_path / "u", subjects=8, seed=11, quiet=True, vowels=2, words=2, sentences=0,
                    pix_per_vector=128, fps=30)
    res = audio_to_ultrasound(root, folds=8, components=10)
    # audio alone beats the mean frame of the training speakers ...
    assert res["ridge_rmse"] < 0.9 * res["global_mean_rmse"], res
    # ... and, calibrated by the held-out speaker's mean frame, predicts the motion around it
    assert res["adapted_ridge_rmse"] < 0.9 * res["speaker_mean_rmse"], res
