"""The phantom against real recordings (frame change of the ultrasound, F0 spread), measured with the same
functions on both; the realism measures themselves; the ground truth exported for other work."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest

from articulate.phantom import generate, motion_region, realism, tongue_keypoints
from articulate.phantom.anatomy import sample_subject
from articulate.phantom.trajectories import make_trajectory


@pytest.fixture(scope="module")
def uti_cohort(tmp_path_factory) -> Path:
    return generate("wav2uti", tmp_path_factory.mktemp("uti") / "cohort", subjects=3, seed=3, quiet=True,
                    workers=1, vowels=1, words=1, sentences=1)


@pytest.fixture(scope="module")
def mri_cohort(tmp_path_factory) -> Path:
    return generate("mri2audio", tmp_path_factory.mktemp("mri") / "cohort", subjects=2, seed=3, quiet=True,
                    workers=1)


# --------------------------------------------------------------------------------------------- the measures


def test_resample_and_frame_change_match_hand_computations():
    # a pixel rising linearly in time stays on its line when resampled (frame centres, 120 -> 60 fps)
    frames = np.arange(24, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    out = realism.resample_frames(frames, 120.0, 60.0)
    assert out.shape == (12, 2, 3)
    np.testing.assert_allclose(out[:, 0, 0], (np.arange(12) + 0.5) * 2 - 0.5)
    # at 60 fps the pixel changes by 2 per frame: 2 and 12 at lags 1 and 6; outside the mask ignored
    frames[:, 1, 2] = 1000.0 * (np.arange(24) % 2)
    mask = np.ones((2, 3), bool)
    mask[1, 2] = False
    change = realism.frame_change(frames, mask, 120.0)
    assert change == pytest.approx({1: 2.0, 6: 12.0})


def test_f0_spread_of_a_known_glide():
    # a harmonic tone gliding linearly in semitones over R has F0 s.d. R / sqrt(12) semitones
    sr, dur, f_start, glide = 16000, 1.5, 110.0, 6.0
    t = np.arange(int(sr * dur)) / sr
    f0 = f_start * 2 ** (glide * t / dur / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 8)).astype(np.float32) * 0.3
    stats = realism.f0_stats(wav, sr)
    assert stats["median_hz"] == pytest.approx(f_start * 2 ** (glide / 2 / 12), rel=0.03)
    assert stats["sd_semitones"] == pytest.approx(glide / np.sqrt(12), rel=0.1)
    assert stats["voiced_frames"] > 0.8 * dur * 100
    # noise is not voiced speech: (almost) nothing survives the edge and loudness checks
    noise = np.random.default_rng(0).normal(0, 0.1, sr).astype(np.float32)
    assert np.isfinite(realism.f0_track(noise, sr)).mean() < 0.1


# --------------------------------------------------------------------------------------------- phantom vs real


def test_ultrasound_frame_change_is_in_the_real_range(uti_cohort, samples_dir):
    """Speckle that moves with the tissue: small change from frame to frame, growing with the lag."""
    videos = sorted(glob.glob(str(samples_dir / "ultrax-video" / "*.avi")))
    ults = sorted(glob.glob(str(samples_dir / "aaa-satkit" / "*.ult")))
    if not videos or not ults:
        pytest.skip("UltraX videos or AAA recordings missing from the samples")
    real = {Path(p).name: realism.ultrasound_change(p) for p in videos + ults}
    real_direct = {Path(p).name: realism.ultrasound_change(p, oversample=1) for p in ults}
    direct = realism.cohort_change(uti_cohort, oversample=1)  # the DataModule's 64-px fan
    area = realism.cohort_change(uti_cohort)  # drawn larger and area-resized, as the videos were
    print("\n1-frame / 6-frame change at 64 px, 60 fps (0-255), area-resized view:")
    for name, c in {**real, "phantom": area}.items():
        print(f"  {name:20s} {c[1]:5.2f} {c[6]:5.2f}  x{c[6] / c[1]:.2f}")
    print("direct bilinear 64-px fan:")
    for name, c in {**real_direct, "phantom": direct}.items():
        print(f"  {name:20s} {c[1]:5.2f} {c[6]:5.2f}  x{c[6] / c[1]:.2f}")
    assert direct[1] <= 4.5 and direct[6] >= 1.7 * direct[1], direct
    assert area[1] <= max(c[1] for c in real.values()) and area[6] >= 1.7 * area[1], (area, real)


def test_f0_spread_is_in_the_real_range(uti_cohort, mri_cohort, samples_dir):
    """Both phantoms' intonation spreads as real speech does: the wav2uti prompts' free intonation, and the
    mri2audio word list's stereotyped contours (a word said alone, with its accent and final fall)."""
    paths = [samples_dir / "tal1" / "088_aud.wav", samples_dir / "ultrasuite-upx" / "sample.wav"]
    paths += sorted(Path(p) for p in glob.glob(str(samples_dir / "ultrax-video" / "*.avi")))
    paths = [p for p in paths if p.is_file()]
    if not paths:
        pytest.skip("no real speech among the samples")
    real = {p.name: realism.f0_stats(realism.read_speech(p), 16000)["sd_semitones"] for p in paths}
    phantom = realism.cohort_f0(uti_cohort)
    words = realism.cohort_f0(mri_cohort)
    print("\nF0 s.d. (semitones):", {k: round(v, 2) for k, v in real.items()},
          f"phantom per recording {phantom['recording_sd_semitones']:.2f}, "
          f"per speaker {phantom['speaker_sd_semitones']:.2f}; mri2audio per recording "
          f"{words['recording_sd_semitones']:.2f}")
    assert min(real.values()) > 2.0  # real speech is not monotone: the measure sees that
    assert phantom["speaker_sd_semitones"] >= 2.0, phantom
    assert phantom["recording_sd_semitones"] >= 1.5, phantom
    assert words["recordings"] == 2 and words["recording_sd_semitones"] >= 2.0, words


# --------------------------------------------------------------------------------------------- speech and motion


def test_f0_follows_the_larynx_that_the_mri_shows():
    """Mean F0 is set by the vocal folds' length, drawn as the larynx's size: pitch is visible in the images."""
    from articulate.phantom import head

    subjects = [sample_subject(np.random.default_rng([5, k]), f"s{k}") for k in range(10)]
    f0 = np.array([s.f0_hz for s in subjects])
    folds = np.array([s.larynx_mm for s in subjects])
    assert np.corrcoef(np.log(f0), np.log(folds))[0, 1] < -0.95
    widths = []
    for s in subjects:
        # antero-posterior width of the dark laryngeal airway 4 mm below the glottis, read off the image
        y = head.reference_to_image(np.array([113.0, 211.0 + s.larynx_drop_mm]), s)
        x = np.arange(80.0, 160.0, 0.25)
        pts = np.stack([x, np.full_like(x, y[1])], -1)[None]
        dark = head.render(pts, dict(head.REST), s)["value"][0] < 0.2
        lo = hi = int(np.argmin(np.abs(x - y[0])))
        assert dark[lo]
        while lo > 0 and dark[lo - 1]:
            lo -= 1
        while hi < len(x) - 1 and dark[hi + 1]:
            hi += 1
        widths.append((hi - lo + 1) * 0.25)
    assert np.corrcoef(widths, folds)[0, 1] > 0.9
    assert np.corrcoef(widths, f0)[0, 1] < -0.8


def test_the_tongue_never_freezes_and_formants_move_through_vowels():
    subject = sample_subject(np.random.default_rng([0, 0, 0]), "s")
    traj = make_trajectory("we see two geese", subject, np.random.default_rng(1), lead_s=(0.4, 0.5))
    speed = np.max(np.abs(np.diff(np.stack(list(traj.art.values())), axis=1)), axis=0) * 1000  # per second
    assert np.mean(speed < 1e-3) < 0.01  # still at no moment, silences included
    lead = traj.t < traj.segments[1][1]
    assert np.ptp(traj.art["jaw"][lead]) > 0.03 and np.ptp(traj.art["lip_close"][lead]) > 0.1  # the in-breath
    for ph, s, e in traj.segments:
        if ph in ("i", "u"):
            mid = (traj.t > s + 0.25 * (e - s)) & (traj.t < e - 0.25 * (e - s))
            f2 = traj.formants[1, mid]
            assert np.ptp(f2) > 15.0 and np.mean(np.abs(np.diff(f2)) > 0) > 0.9, (ph, np.ptp(f2))


# --------------------------------------------------------------------------------------------- ground truth


def test_keypoints_lie_on_the_tongue_echo_and_run_root_to_tip(uti_cohort):
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.ultrasound import FanConverter, read_utterance

    size = (96, 128)
    on, off, dx = [], [], []
    rng = np.random.default_rng(0)
    for rec in index_dataset(uti_cohort):
        utt = read_utterance(rec.image)
        fan = FanConverter(utt.params, size=size)
        imgs = fan(utt.scanlines.astype(np.float32))
        kp = tongue_keypoints(rec.image, size)
        dense = tongue_keypoints(rec, size, dense=True)
        assert kp.shape == (len(imgs), 11, 2) and dense.shape == (len(imgs), 101, 2)
        np.testing.assert_array_equal(kp, dense[:, ::10])
        ok = np.isfinite(kp).all(-1)
        assert ok.mean() > 0.5
        safe = np.where(ok[..., None], kp, 0.0)
        rows, cols = np.rint(safe[..., 1]).astype(int), np.rint(safe[..., 0]).astype(int)
        f = np.nonzero(ok)
        on.append(imgs[f[0], np.clip(rows[f], 0, size[0] - 1), np.clip(cols[f], 0, size[1] - 1)])
        fr, fc = np.nonzero(fan.mask)
        pick = rng.integers(0, len(fr), 2000)
        off.append(imgs[rng.integers(0, len(imgs), 2000), fr[pick], fc[pick]])
        # evenly spaced along the surface (the fan image is an isotropic map of the head): equal steps
        step = np.linalg.norm(np.diff(dense, axis=1), axis=-1)
        ref = np.broadcast_to(np.nanmedian(step, axis=1, keepdims=True), step.shape)
        both = np.isfinite(step)
        assert both.mean() > 0.5
        np.testing.assert_allclose(step[both], ref[both], rtol=1e-2)  # chords of an evenly cut polyline
        dx.append(np.nanmean(kp[:, 6:, 0]) - np.nanmean(kp[:, :4, 0]))  # the tip is on the right
    on, off = np.concatenate(on), np.concatenate(off)
    assert on.mean() > 3.0 * off.mean(), (on.mean(), off.mean())
    assert min(dx) > 0


def test_motion_region_covers_what_moves_and_resamples(mri_cohort):
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.mri import read_mri

    for rec in index_dataset(mri_cohort):
        frames = read_mri(rec.image).frames
        region = motion_region(rec.image)
        assert region.shape == frames.shape and set(np.unique(region)) <= {0.0, 1.0}
        # the pixels that change most (beyond the fading tags and the noise everywhere) are in the region,
        # which is a small part of the image
        change = np.abs(np.diff(frames, axis=0)).mean(0)
        inside = region.max(0) > 0
        top = change >= np.percentile(change, 98)
        assert inside.mean() < 0.2 and (top & inside).sum() > 0.9 * top.sum()
        small = motion_region(rec, size=(32, 32))
        np.testing.assert_allclose(small.mean(axis=(1, 2)), region.mean(axis=(1, 2)), atol=1e-6)  # area keeps the share
        half = motion_region(rec.image, frames=13)
        np.testing.assert_allclose(half, 0.5 * (region[0::2] + region[1::2]), atol=1e-6)
        fast = motion_region(rec.image, min_speed_mm_s=20.0)
        assert np.all(fast <= region) and 0 < fast.sum() < region.sum()


def test_realism_sheet_cli(tmp_path, uti_cohort, samples_dir):
    from articulate.cli.main import main

    real = [samples_dir / "ultrax-video" / "Ultrax_TD_001.avi", samples_dir / "aaa-satkit" / "File009.ult",
            samples_dir / "tal1" / "088_aud.wav"]
    real = [str(p) for p in real if p.is_file()]
    if not real:
        pytest.skip("no real recordings among the samples")
    out = tmp_path / "sheet.png"
    assert main(["phantom", "preview", str(uti_cohort), "--out", str(out), "--real", *real]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
