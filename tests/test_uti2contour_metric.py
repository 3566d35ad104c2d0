"""MSD against a brute-force scipy reference, the contour spline, and ContourMSD's bookkeeping
(DDP-style duplicates, found fraction, mm, image mode through a contour checkpoint)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from articulate.contour.curves import catmull_rom, contour_from_keypoints, resample_polyline
from articulate.metrics.contour import ContourMSD, keypoint_msd, msd


def _curve(rng, n=11, scale=50.0):
    t = np.linspace(0, np.pi, n)
    base = np.stack([100 + scale * np.cos(t)[::-1], 80 - 0.6 * scale * np.sin(t)], -1)
    return base + rng.normal(0, 2.0, base.shape)


def _brute_msd(a, b, dense=20000):
    """Mean nearest distance both ways, B and A densely resampled, by a k-d tree."""
    da = cKDTree(resample_polyline(b, dense)).query(a)[0].mean()
    db = cKDTree(resample_polyline(a, dense)).query(b)[0].mean()
    return 0.5 * (da + db)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_msd_matches_kdtree_on_dense_curves(seed):
    rng = np.random.default_rng(seed)
    a = resample_polyline(catmull_rom(_curve(rng)), 100)
    b = resample_polyline(catmull_rom(_curve(rng) + rng.normal(0, 3, 2)), 137)  # other point count
    ref = _brute_msd(a, b)
    assert msd(a, b) == pytest.approx(ref, abs=2e-3)
    assert msd(a, b) == pytest.approx(msd(b, a))  # symmetric by definition


def test_msd_hand_computed_cases():
    a = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert msd(a, a) == 0.0
    # a parallel segment 3 px away, same extent: every point is 3 px from the other curve
    assert msd(resample_polyline(a, 50), resample_polyline(a + [0, 3], 50)) == pytest.approx(3.0)
    # a single point at the middle, 4 px above: A->B mean of |(x-5, -4)| over x in [0,10]; B->A = 4
    xs = np.linspace(0, 10, 2001)
    pt = np.array([[5.0, 4.0]])
    expect = 0.5 * (np.hypot(xs - 5, 4).mean() + 4.0)
    assert msd(resample_polyline(a, 2001), pt) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(ValueError):
        msd(np.zeros((0, 2)), a)


def test_spline_passes_through_keypoints_and_skips_missing():
    rng = np.random.default_rng(5)
    kp = _curve(rng)
    dense = catmull_rom(kp, per_segment=16)
    for p in kp:  # every keypoint is on the curve
        assert np.min(np.linalg.norm(dense - p, axis=1)) < 1e-9
    kp[4] = np.nan
    c = contour_from_keypoints(kp, 80)
    assert c.shape == (80, 2) and np.isfinite(c).all()
    assert np.allclose(c[0], kp[0]) and np.allclose(c[-1], kp[-1])
    steps = np.linalg.norm(np.diff(c, axis=0), axis=1)
    assert steps.std() / steps.mean() < 2e-3  # uniform in arc length (chords of a dense polyline)
    assert contour_from_keypoints(np.full((11, 2), np.nan)) is None
    assert math.isnan(keypoint_msd(np.full((11, 2), np.nan), kp))


def test_contour_msd_metric_dedups_and_averages_per_frame():
    rng = np.random.default_rng(1)
    ref = np.stack([_curve(rng) for _ in range(5)])  # [5, 11, 2]
    pred = ref + rng.normal(0, 1.5, ref.shape)
    expected = np.mean([keypoint_msd(p, r) for p, r in zip(pred, ref)])
    m = ContourMSD(tongue_points=11)
    # batches out of order, sample 0 repeated (DistributedSampler padding): counted once
    m.update(torch.from_numpy(pred[[3, 4, 0]]), torch.from_numpy(ref[[3, 4, 0]]), sample_index=torch.tensor([3, 4, 0]))
    m.update(torch.from_numpy(pred[[0, 1, 2]]), torch.from_numpy(ref[[0, 1, 2]]), sample_index=torch.tensor([0, 1, 2]))
    assert float(m.compute()) == pytest.approx(expected, rel=1e-12)
    s = m.summary()
    assert s["frames"] == 5 and s["scored"] == 5 and s["found_fraction"] == 1.0 and math.isnan(s["msd_mm"])


def test_contour_msd_found_fraction_mm_and_missing_reference():
    rng = np.random.default_rng(2)
    ref = np.stack([_curve(rng) for _ in range(4)])
    pred = ref + 1.0
    ref[3] = np.nan  # no reference contour: not scored, still counted for found
    conf = torch.tensor([[0.9] * 11, [0.1] * 11, [0.5] * 11, [0.8] * 11])
    m = ContourMSD(tongue_points=11, threshold=0.3, report="found_fraction")
    m.update(torch.from_numpy(pred), torch.from_numpy(ref), sample_index=torch.arange(4), pred_confidence=conf,
             mm_per_pixel=torch.tensor([0.5, 0.5, float("nan"), 0.5], dtype=torch.float64))
    assert float(m.compute()) == pytest.approx(0.75)
    s = m.summary()
    d = [keypoint_msd(p, r) for p, r in zip(pred[:3], ref[:3])]
    assert s["scored"] == 3 and s["msd_px"] == pytest.approx(np.mean(d))
    assert s["msd_mm"] == pytest.approx(0.5 * np.mean(d[:2]))  # only frames of known pixel size


def test_only_the_tongue_points_form_the_contour():
    rng = np.random.default_rng(3)
    ref = np.concatenate([_curve(rng), rng.uniform(0, 200, (3, 2))])[None]  # + hyoid, mandible, tendon
    pred = ref.copy()
    pred[0, 11:] += 50.0  # far-off non-tongue points do not change the contour
    m = ContourMSD(tongue_points=11)
    m.update(torch.from_numpy(pred), torch.from_numpy(ref), sample_index=torch.tensor([0]))
    assert float(m.compute()) == 0.0


def test_image_mode_tracks_both_sides_with_the_checkpoint(tmp_path):
    """Mode (a): the metric loads the contour model from its checkpoint and compares tracked contours;
    equal to tracking by hand then comparing keypoints. Mode (b): images vs true keypoints."""
    from articulate.contour.tracker import ContourTracker
    from articulate.networks.uti2contour import HeatmapUNet

    torch.manual_seed(0)
    net = HeatmapUNet(num_keypoints=14, base_channels=4, depth=2, norm="group")
    with torch.no_grad():
        net.head.bias.fill_(0.5)  # confident enough to count as found
    ckpt = tmp_path / "c.ckpt"
    torch.save(ContourTracker(net, (32, 32), [f"p{i}" for i in range(14)], 11, "bottom").checkpoint(), ckpt)
    gen = torch.rand(2, 1, 3, 24, 24)
    real = torch.rand(2, 1, 3, 24, 24)
    m = ContourMSD(pred_kind="images", target_kind="images", contour_ckpt=str(ckpt), probe="top")
    m.update(gen, real, sample_index=torch.tensor([0, 1]))
    tr = ContourTracker.from_checkpoint(ckpt, "cpu")
    kg, _ = tr(gen[:, 0].reshape(-1, 24, 24), probe="top")
    kr, _ = tr(real[:, 0].reshape(-1, 24, 24), probe="top")
    expect = np.mean([keypoint_msd(a[:11], b[:11]) for a, b in zip(kg.numpy(), kr.numpy())])
    assert float(m.compute()) == pytest.approx(expect, rel=1e-9)
    truth = kr.reshape(2, 3, 14, 2)
    mb = ContourMSD(pred_kind="images", target_kind="keypoints", contour_ckpt=str(ckpt), probe="top")
    mb.update(gen, truth, sample_index=torch.tensor([0, 1]))
    assert float(mb.compute()) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(ValueError, match="contour_ckpt"):
        ContourMSD(pred_kind="images")
