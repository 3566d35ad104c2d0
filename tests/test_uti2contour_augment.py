"""Geometry and augmentation: a keypoint stays on the same image feature; crops never cut a labelled
point; the fan fit recovers FanConverter's geometry; the edge tracer and the phantom's true surface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from articulate.contour.augment import FanInImage, UltrasoundAugment
from articulate.contour.fan import estimate_fan, fan_from_converter
from articulate.contour.geometry import apply_affine, letterbox, warp_images
from articulate.readers.ultrasound import FanConverter, UltrasoundParams


def _blobs(h, w, pts, sigma=1.2):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w))
    for x, y in pts:
        img = np.maximum(img, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
    return img


def _peak(img, x, y, r=4):
    """Sub-pixel centroid of the blob near (x, y)."""
    h, w = img.shape
    x0, y0 = int(round(x)), int(round(y))
    ys, xs = np.mgrid[max(0, y0 - r):min(h, y0 + r + 1), max(0, x0 - r):min(w, x0 + r + 1)]
    v = img[ys, xs] ** 4
    return (v * xs).sum() / v.sum(), (v * ys).sum() / v.sum()


def test_letterbox_maps_pixel_edges_and_pads_centred():
    m = letterbox((240, 320), (128, 160))
    # scale 0.5: the image becomes 120 x 160, padded by 4 rows above and below
    np.testing.assert_allclose(apply_affine(np.array([[-0.5, -0.5], [319.5, 239.5]]), m), [[-0.5, 3.5], [159.5, 123.5]])


@pytest.mark.parametrize("seed", range(6))
def test_keypoint_stays_on_its_image_feature(seed):
    rng = np.random.default_rng(seed)
    src_hw, out_hw = (240, 320), (128, 160)
    gx, gy = np.meshgrid(np.linspace(70, 250, 4), np.linspace(60, 180, 3))  # blobs well apart
    pts = np.stack([gx.ravel(), gy.ravel()], -1) + rng.uniform(-8, 8, (12, 2))
    img = torch.from_numpy(_blobs(*src_hw, pts, sigma=2.5)).float()
    aug = UltrasoundAugment()
    m = aug.matrix(rng, out_hw) @ letterbox(src_hw, out_hw)
    out = warp_images(img[None], m[None], out_hw)[0].numpy()
    for (x, y) in apply_affine(pts, m):
        if 4 <= x < out_hw[1] - 4 and 4 <= y < out_hw[0] - 4:
            px, py = _peak(out, x, y)
            assert abs(px - x) < 0.25 and abs(py - y) < 0.25
    # photometric changes leave positions alone (the blob is still brightest at the keypoint)
    out2 = aug.photometric(torch.from_numpy(out).float(), np.random.default_rng(seed + 100)).numpy()
    for (x, y) in apply_affine(pts, m):
        if 6 <= x < out_hw[1] - 6 and 6 <= y < out_hw[0] - 6:
            px, py = _peak(out2, x, y, r=3)
            assert abs(px - x) < 0.8 and abs(py - y) < 0.8


def test_photometric_keeps_black_outside_the_fan_and_crops_spare_keypoints():
    params = UltrasoundParams(num_vectors=64, pix_per_vector=200, zero_offset=40, bits_per_pixel=8, angle=0.025,
                              kind=0, pixels_per_mm=4.0, fps=60.0, time_first_frame=0.0)
    conv = FanConverter(params, size=(96, 128))
    img = torch.from_numpy(np.where(conv.mask, 0.5, 0.0)).float()
    fan = FanInImage.from_fan(fan_from_converter(conv, "top"), np.eye(3))
    # keypoints deep in the fan and near its sides
    kp = np.array(fan_from_converter(conv, "top").ray(np.array([-0.6, 0.0, 0.6]), np.array([150 / conv.samples_per_pixel])))[:, 0]
    aug = UltrasoundAugment(depth_crop=1.0, fan_crop=1.0, p=1.0)
    for s in range(20):
        out = aug.photometric(img, np.random.default_rng(s), fan, kp)
        assert (out[~torch.from_numpy(conv.mask)] == 0).all()
        for x, y in kp:  # the pixels at labelled points are never blacked out by a crop
            assert out[int(round(y)), int(round(x))] > 0


@pytest.mark.parametrize("probe", ["top", "bottom"])
def test_fan_fit_recovers_the_converter_geometry(probe):
    params = UltrasoundParams(num_vectors=64, pix_per_vector=842, zero_offset=210, bits_per_pixel=8, angle=0.025,
                              kind=1, pixels_per_mm=10.525, fps=81.5, time_first_frame=0.0)
    conv = FanConverter(params, size=(240, 320))
    rng = np.random.default_rng(0)
    img = conv(rng.uniform(40, 200, (64, 842)).astype(np.float32))
    if probe == "bottom":
        img = img[::-1]
    fit, truth = estimate_fan(img), fan_from_converter(conv, probe)
    assert fit is not None and fit.probe == probe
    assert abs(fit.apex[0] - truth.apex[0]) < 1.0 and abs(fit.apex[1] - truth.apex[1]) < 1.5
    assert fit.r_max == pytest.approx(truth.r_max, abs=1.5) and fit.r_min == pytest.approx(truth.r_min, abs=1.5)
    assert fit.theta_max == pytest.approx(truth.theta_max, abs=0.03)
    # the depth ratio identifies the system: (ZeroOffset + PixPerVector) / ZeroOffset
    assert fit.r_max / fit.r_min == pytest.approx((210 + 841) / 210, rel=0.05)


def test_edge_tracer_finds_a_bright_arc_and_mean_shape_is_the_mean():
    from articulate.contour.baselines import EdgeTracer, MeanShapeBaseline

    params = UltrasoundParams(num_vectors=64, pix_per_vector=256, zero_offset=30, bits_per_pixel=8, angle=0.025,
                              kind=0, pixels_per_mm=3.0, fps=60.0, time_first_frame=0.0)
    conv = FanConverter(params, size=(240, 320))
    rng = np.random.default_rng(1)
    v = np.arange(64)
    surface = 150 + 40 * np.cos((v - 32) / 64 * np.pi)  # sample index of the surface on each line
    scan = rng.uniform(20, 50, (64, 256))
    j = np.arange(256)[None]
    scan += 200 * np.exp(-0.5 * ((j - surface[:, None]) / 2.0) ** 2)
    scan[j > surface[:, None] + 3] *= 0.15  # acoustic shadow beyond the surface
    frame = conv(scan)[::-1]  # probe at the bottom
    fan = fan_from_converter(conv, "bottom")
    lines = np.linspace(0, 63, 400)
    # the tongue/air boundary is where the echo gives way to the shadow (3 samples past its peak)
    r = (30 + 3 + np.interp(lines, v, surface)) / conv.samples_per_pixel
    true = np.array([fan.ray((ln - 32) * 0.025, np.array([rr]))[0] for ln, rr in zip(lines, r)])
    kp, conf = EdgeTracer()(frame[None], fan=fan)
    from articulate.contour.curves import contour_from_keypoints, polyline_length
    from articulate.metrics.contour import point_to_polyline

    traced = contour_from_keypoints(kp[0], 200)
    assert point_to_polyline(traced, true).mean() < 1.0  # on the arc (px, 240 x 320 image) ...
    assert polyline_length(traced) > 0.8 * polyline_length(true)  # ... and along most of it
    assert conf.shape == (1, 11) and (conf >= 0).all()
    train = rng.normal(100, 5, (7, 14, 2))
    train[2, 3] = np.nan
    mean_kp, mean_conf = MeanShapeBaseline.fit(train)(np.zeros((3, 8, 8)))
    np.testing.assert_allclose(mean_kp[1], np.nanmean(train, axis=0))
    assert mean_kp.shape == (3, 14, 2) and (mean_conf == 1).all()
