"""Floors and ceilings of the mri2audio tables: the ridge probe, the MRI window of a crop, the attention ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from articulate.baselines.linear import ridge_path
from articulate.baselines.ridge import RidgeProbe, frame_positions
from articulate.metrics.attention import AttentionMotionModulation, AttentionMotionRatio
from datamodules.mri2audio_items import resample_frames, window_positions

pytestmark = pytest.mark.usefixtures("one_thread")


def test_frame_positions_by_hand():
    # 26 frames over 26,000 samples: frame k is centred on sample 1000 k + 500
    pos = frame_positions(crop_start=1500, mel_frames=3, hop_length=1000, span=(0, 26000), mri_frames=26)
    np.testing.assert_allclose(pos, [1.0, 2.0, 3.0])
    # the same samples when the frames cover only [1000, 14000) (a window of 13,000 samples)
    np.testing.assert_allclose(frame_positions(1500, 3, 1000, (1000, 14000), 26), [0.5, 2.5, 4.5])


def test_window_positions_and_resampling_by_hand():
    # 4 output frames spanning samples [2000, 6000) of a 10,000-sample recording with 10 frames: centres
    # 2500, 3500, ... -> input positions 2.0, 3.0, 4.0, 5.0
    pos = window_positions(2000, 4000, 10000, 10, 4)
    np.testing.assert_allclose(pos, [2.0, 3.0, 4.0, 5.0])
    x = torch.arange(10, dtype=torch.float32)[:, None, None] * torch.ones(1, 2, 3)
    got = resample_frames(x, [0.25, 4.5, 8.75, 12.0, -1.0])
    np.testing.assert_allclose(got[:, 0, 0].numpy(), [0.25, 4.5, 8.75, 9.0, 0.0])  # clamped at both ends
    assert got.shape == (5, 2, 3)


def _synthetic(n: int, rng: np.random.Generator):
    """MRI sequences whose pooled motion drives a known mel: one bright square moving down with time."""
    items = []
    for i in range(n):
        speed = rng.uniform(0.5, 2.0)
        t = np.arange(12)
        frames = np.zeros((12, 16, 16), np.float32)
        for k in t:
            row = int(np.clip(2 + speed * k * 0.5, 0, 13))
            frames[k, row:row + 3, 5:8] = 1.0
        pos = np.linspace(0, 11, 20)
        depth = np.interp(pos, t, np.clip(2 + speed * t * 0.5, 0, 13))
        mel = np.stack([np.exp(-0.5 * ((b - depth) / 2.0) ** 2) for b in range(8)])  # [8, 20]
        items.append((torch.from_numpy(frames), torch.from_numpy(mel.astype(np.float32)), pos, f"S{i}"))
    return items


def test_ridge_probe_learns_a_motion_to_mel_map_and_round_trips():
    rng = np.random.default_rng(0)
    train, test = _synthetic(24, rng), _synthetic(6, rng)
    probe = RidgeProbe(grid=8, components=6).fit(train)
    assert float(probe.state["strength"]) in probe.lambdas
    err = np.mean([np.mean((probe.predict(m, p) - y.numpy()) ** 2) for m, y, p, _ in test])
    mean_mel = np.mean([y.numpy() for _, y, _, _ in train], 0)
    floor = np.mean([np.mean((mean_mel - y.numpy()) ** 2) for _, y, _, _ in test])
    assert err < 0.1 * floor  # the mel follows the square's depth: the mean mel cannot
    # a closed form: refitting gives the same weights; the state survives a checkpoint's tensors
    again = RidgeProbe(grid=8, components=6).fit(train)
    np.testing.assert_allclose(again.state["weights"], probe.state["weights"])
    restored = RidgeProbe(grid=8, components=6).load_state_dict(probe.state_dict())
    m, _, p, _ = test[0]
    np.testing.assert_allclose(restored.predict(m, p), probe.predict(m, p))
    with pytest.raises(RuntimeError, match="not fitted"):
        RidgeProbe().predict(m, p)


def test_ridge_solution_matches_the_normal_equations():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 5)), rng.normal(size=(200, 3))
    mx, sx, my, w = ridge_path(x, y, [0.1])[0]
    xs = (x - mx) / sx
    ref = np.linalg.solve(xs.T @ xs + 0.1 * len(x) * np.eye(5), xs.T @ (y - my))
    np.testing.assert_allclose(w, ref, rtol=1e-8, atol=1e-10)


def test_attention_motion_modulation_against_numpy_and_by_hand():
    """Temporal s.d. of the mask per pixel, weighed by the region's share of the frames, inside over outside;
    a mask constant in time is undefined; padding duplicates are ignored."""
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(3, 5, 6, 6, generator=g)
    region = (torch.rand(3, 5, 6, 6, generator=g) > 0.6).double()
    a, r = mask.double().numpy(), region.numpy()
    sd, w = a.std(axis=1), r.mean(axis=1)
    want = ((sd * w).sum() / w.sum()) / ((sd * (1 - w)).sum() / (1 - w).sum())
    metric = AttentionMotionModulation()
    metric.update(mask[:2], region[:2], sample_index=torch.tensor([0, 1]))
    metric.update(mask[1:], region[1:], sample_index=torch.tensor([1, 2]))  # sample 1 again: counted once
    assert float(metric.compute()) == pytest.approx(want, rel=1e-12)
    # by hand: a pixel flickering 0.2 <-> 0.6 inside (s.d. 0.2), 0.3 <-> 0.4 outside (s.d. 0.05): 4
    m = torch.tensor([0.3, 0.4, 0.3, 0.4]).reshape(1, 4, 1, 1).repeat(1, 1, 1, 2)
    m[0, :, 0, 0] = torch.tensor([0.2, 0.6, 0.2, 0.6])
    reg = torch.zeros(1, 4, 1, 2)
    reg[0, :, 0, 0] = 1.0
    flick = AttentionMotionModulation()
    flick.update(m, reg)
    assert float(flick.compute()) == pytest.approx(4.0)
    const = AttentionMotionModulation()
    const.update(torch.full((1, 3, 4, 4), 0.37), (torch.rand(1, 3, 4, 4, generator=g) > 0.5).double())
    assert math.isnan(float(const.compute()))
    with pytest.raises(ValueError, match="region"):
        AttentionMotionModulation().update(mask, region[:, :2])


def test_attention_motion_ratio_by_hand_and_deduplicated():
    region = torch.zeros(2, 3, 4, 4)
    region[:, :, :2, :2] = 1.0  # 4 of 16 pixels per frame
    mask = torch.full((2, 3, 4, 4), 0.2)
    mask[:, :, :2, :2] = 0.8
    metric = AttentionMotionRatio()
    metric.update(mask, region, sample_index=torch.tensor([0, 1]))
    metric.update(mask[:1], region[:1], sample_index=torch.tensor([0]))  # a padding duplicate: ignored
    assert float(metric.compute()) == pytest.approx(4.0)
    const = AttentionMotionRatio()
    const.update(torch.full((1, 3, 4, 4), 0.37), region[:1])
    assert float(const.compute()) == pytest.approx(1.0)
    # fractional regions weigh pixels by coverage: inside = (0.5 * 1) / 0.5, outside = (0.5 * 1 + 15 * 0) / 15.5
    frac = torch.zeros(1, 1, 4, 4)
    frac[0, 0, 0, 0] = 0.5
    m = torch.zeros(1, 1, 4, 4)
    m[0, 0, 0, 0] = 1.0
    one = AttentionMotionRatio()
    one.update(m, frac)
    assert float(one.compute()) == pytest.approx(1.0 / (0.5 / 15.5))
