"""Heatmap targets, sub-pixel decoding, the masked loss (missing points have zero weight), the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from articulate.networks.uti2contour import HeatmapUNet, decode_heatmaps, gaussian_targets, masked_heatmap_loss
from articulate.networks.uti2contour.heatmaps import to_heatmap_coords, to_input_coords


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_decoding_recovers_subpixel_positions(stride):
    rng = np.random.default_rng(stride)
    xy = torch.from_numpy(rng.uniform(8, 100, (3, 5, 2)))
    heat = gaussian_targets(xy, (128 // stride, 128 // stride), stride, sigma=2.0)
    kp, conf = decode_heatmaps(heat, stride=stride, smooth_sigma=1.0)
    # a Gaussian's log is a parabola: the refinement is exact up to float32 rounding
    np.testing.assert_allclose(kp.numpy(), xy.numpy(), atol=2e-3 * stride)
    assert (conf > 0.9).all() and (conf <= 1.0).all()


def test_heatmap_coordinate_convention_round_trips():
    xy = torch.tensor([[0.0, 0.0], [-0.5, -0.5], [13.25, 7.0]])
    for s in (1, 2, 4):
        assert torch.allclose(to_input_coords(to_heatmap_coords(xy, s), s), xy)
    # the input pixel edge -0.5 maps to the heatmap pixel edge -0.5
    assert torch.allclose(to_heatmap_coords(torch.tensor([-0.5]), 4), torch.tensor([-0.5]))


def test_missing_point_has_zero_weight():
    """Changing a missing point's target changes neither the loss nor its gradient."""
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 16, 20, requires_grad=True)
    xy = torch.tensor([[[5.0, 6.0], [9.0, 3.0], [12.0, 10.0]], [[1.0, 2.0], [7.0, 7.0], [3.0, 14.0]]])
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    t1 = gaussian_targets(xy, (16, 20), 1, 1.5)
    t2 = t1.clone()
    t2[0, 1] = torch.rand(16, 20)  # anything at all where the point is missing
    t2[1, 2] = 1.0
    l1 = masked_heatmap_loss(pred, t1, weight, fg_weight=5.0)
    g1, = torch.autograd.grad(l1, pred)
    l2 = masked_heatmap_loss(pred, t2, weight, fg_weight=5.0)
    g2, = torch.autograd.grad(l2, pred)
    assert l1.item() == l2.item()
    assert torch.equal(g1, g2) and g1[0, 1].abs().sum() == 0 and g1[1, 2].abs().sum() == 0
    # hand computation: the mean over the valid maps of their per-pixel squared error
    per_map = ((pred - t1) ** 2 * (1 + 5.0 * t1)).mean((-2, -1))
    assert l1.item() == pytest.approx(((per_map * weight).sum() / weight.sum()).item(), rel=1e-6)
    # not zero targets: a point masked out is not trained towards an empty map
    assert masked_heatmap_loss(pred, torch.zeros_like(t1), weight).item() != pytest.approx(
        masked_heatmap_loss(pred, torch.zeros_like(t1), torch.ones_like(weight)).item())


def test_missing_points_give_empty_targets_without_nan():
    xy = torch.tensor([[[float("nan"), 3.0], [4.0, 5.0]]])
    t = gaussian_targets(xy, (8, 8), 1, 1.0)
    assert torch.isfinite(t).all() and t[0, 0].sum() == 0 and t[0, 1, 5, 4] == 1.0


@pytest.mark.parametrize("stride", [1, 2])
def test_network_shapes_and_divisibility(stride):
    net = HeatmapUNet(num_keypoints=14, base_channels=4, depth=3, output_stride=stride)
    out = net(torch.rand(2, 1, 48, 64))
    assert out.shape == (2, 14, 48 // stride, 64 // stride)
    with pytest.raises(ValueError, match="divisible by 16"):
        net(torch.rand(1, 1, 40, 64))
    assert net.init_args["base_channels"] == 4 and HeatmapUNet(**net.init_args).init_args == net.init_args
