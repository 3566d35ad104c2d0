"""Ultrasound formats: .param/US.txt, .ult, synchronised utterances, and the fan conversion
checked against scipy.ndimage.map_coordinates and closed-form geometry."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from articulate.errors import InputError
from articulate.readers.audio import read_audio
from articulate.readers.ultrasound import (
    FanConverter,
    UltrasoundParams,
    common_span,
    read_param,
    read_ult,
    read_utterance,
    utterance_files,
    write_param,
    write_ult,
    write_utterance,
)

TAL = UltrasoundParams(64, 842, zero_offset=210, angle=0.025, kind=1, pixels_per_mm=10.525, fps=81.512, time_first_frame=0.97092)


def _scan(frames: int, params: UltrasoundParams, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, params.num_vectors, params.pix_per_vector), dtype=np.uint8)


# ---------------------------------------------------------------- parameters


def test_read_param_real_samples(samples_dir):
    tal = read_param(samples_dir / "tal1" / "088_aud.param")
    assert (tal.num_vectors, tal.pix_per_vector, tal.zero_offset, tal.bits_per_pixel, tal.kind) == (64, 842, 210, 8, 1)
    assert (tal.angle, tal.pixels_per_mm, tal.fps, tal.time_first_frame) == (0.025, 10.525, 81.512, 0.97092)
    upx = read_param(samples_dir / "ultrasuite-upx" / "sample.param")
    assert (upx.num_vectors, upx.pix_per_vector, upx.zero_offset, upx.angle) == (63, 412, 51, 0.038)
    assert (upx.fps, upx.time_first_frame, upx.frame_bytes) == (121.618, 0.5073, 63 * 412)


def test_us_txt_with_comma_decimals_and_unknown_keys(tmp_path):
    text = (
        "NumVectors=64\r\nPixPerVector=842\r\nZeroOffset=210\r\nBitsPerPixel=8\r\nAngle=0,025\r\n"
        "Kind=1\r\nPixelsPerMm=10,525\r\nFramesPerSec=81,6700\r\nTimeInSecsOfFirstFrame=0,2312\r\n"
        "ProbeName=Micro 20mm\r\nDepth=80,0\r\n"
    )
    (tmp_path / "utt01US.txt").write_bytes(text.encode("latin-1"))
    p = read_param(tmp_path / "utt01US.txt")
    assert (p.angle, p.pixels_per_mm, p.fps, p.time_first_frame) == (0.025, 10.525, 81.67, 0.2312)
    assert p.extra == {"ProbeName": "Micro 20mm", "Depth": "80,0"}
    back = read_param(write_param(tmp_path / "copy.param", p))
    assert back == p


def test_param_refusals(tmp_path):
    bad = tmp_path / "bad.param"
    bad.write_text("NumVectors=64\nPixPerVector=842\n")
    with pytest.raises(InputError, match=r"bad\.param: not an ultrasound parameter file: missing Angle, FramesPerSec"):
        read_param(bad)
    bad.write_text("NumVectors=sixty\nPixPerVector=842\nAngle=0.1\nFramesPerSec=60\n")
    with pytest.raises(InputError, match=r"bad\.param: line 1: NumVectors='sixty' is not a number"):
        read_param(bad)
    bad.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputError, match="binary data"):
        read_param(bad)


# ---------------------------------------------------------------- .ult


def test_ult_round_trip_and_float_input(tmp_path):
    scan = _scan(5, TAL)
    path = write_ult(tmp_path / "a.ult", scan)
    assert path.stat().st_size == 5 * 64 * 842
    np.testing.assert_array_equal(read_ult(path, TAL), scan)
    write_ult(tmp_path / "f.ult", scan.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(read_ult(tmp_path / "f.ult", TAL), scan)
    with pytest.raises(ValueError):
        write_ult(tmp_path / "g.ult", scan.astype(np.float32))  # 0..255 floats are ambiguous


def test_ult_size_refusals(tmp_path):
    short = tmp_path / "short.ult"
    short.write_bytes(bytes(1000))
    with pytest.raises(InputError, match=r"short\.ult: 1000 bytes is shorter than one frame \(53888 bytes = 64 x 842"):
        read_ult(short, TAL)
    ragged = tmp_path / "ragged.ult"
    ragged.write_bytes(bytes(2 * 53888 + 7))
    with pytest.raises(InputError, match=r"ragged\.ult: 107783 bytes is not a whole number of frames of 53888 bytes .* 2 frames \+ 7 bytes"):
        read_ult(ragged, TAL)


# ---------------------------------------------------------------- utterances


def test_common_span_closed_form():
    # Audio 2 s at 16 kHz, 60 fps video starting at 0.5 s with 200 frames (3.33 s): audio ends first.
    span = common_span(200, 60.0, 0.5, 32000, 16000)
    assert span == {"frame_start": 0, "frame_stop": 90, "sample_start": 8000, "sample_stop": 32000}
    # Ultrasound started 0.1 s before the audio: the first 6 frames have no sound.
    span = common_span(100, 60.0, -0.1, 48000, 16000)
    assert span["frame_start"] == 6 and span["sample_start"] == 0
    assert span["frame_stop"] == 100 and span["sample_stop"] == round((-0.1 + 100 / 60) * 16000)
    assert common_span(10, 60.0, 5.0, 16000, 16000)["frame_stop"] == 0  # no overlap


def _copy_sample(samples_dir, tmp_path, folder, stem, frames, params_path):
    dst = tmp_path / "spk"
    dst.mkdir()
    for suffix in (".param", ".wav", ".txt"):
        shutil.copy(samples_dir / folder / f"{stem}{suffix}", dst / f"{stem}{suffix}")
    params = read_param(params_path)
    scan = _scan(frames, params, seed=3)
    write_ult(dst / f"{stem}.ult", scan)
    return dst / stem, params, scan


def test_read_utterance_ultrasuite_sample_ultrasound_outlasts_audio(samples_dir, tmp_path):
    stem, params, scan = _copy_sample(samples_dir, tmp_path, "ultrasuite-upx", "sample", 1000, samples_dir / "ultrasuite-upx" / "sample.param")
    full, sr = read_audio(stem.with_suffix(".wav"))
    utt = read_utterance(stem.with_suffix(".ult"))
    kept = math.floor((full.size / sr - 0.5073) * 121.618)  # frames whose whole period has audio
    assert utt.num_frames == kept == 892
    np.testing.assert_array_equal(utt.scanlines, scan[:kept])
    start = round(0.5073 * sr)
    assert utt.trim["samples_dropped_start"] == start and utt.trim["frames_dropped_end"] == 1000 - kept
    np.testing.assert_array_equal(utt.audio, full[start : start + utt.audio.size])
    assert abs(utt.audio.size - kept / 121.618 * sr) <= 1
    assert utt.params.time_first_frame == 0.0 and utt.trim["original_time_first_frame"] == 0.5073
    assert (utt.text, utt.speaker, utt.sr) == ("packing Hague top guy", "UPX_01F_BL2", 22050)


def test_read_utterance_tal_sample_audio_outlasts_ultrasound(samples_dir, tmp_path):
    stem, params, scan = _copy_sample(samples_dir, tmp_path, "tal1", "088_aud", 120, samples_dir / "tal1" / "088_aud.param")
    utt = read_utterance(stem.with_suffix(".wav"), sr=16000)
    assert utt.num_frames == 120 and utt.sr == 16000
    assert utt.trim["samples_dropped_start"] == round(0.97092 * 16000)
    assert abs(utt.audio.size - 120 / 81.512 * 16000) <= 1
    assert utt.text == "The mango and the papaya are in a bowl." and utt.speaker == "spk"  # no line 3: folder name


def test_write_utterance_round_trip_and_lookup(tmp_path):
    params = UltrasoundParams(32, 64, zero_offset=20, angle=0.03, fps=60.0, time_first_frame=-0.05, pixels_per_mm=8.0)
    scan = _scan(30, params)
    audio = (0.1 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    stem = write_utterance(tmp_path / "S01" / "u001", scan, params, audio, 16000, "a prompt", speaker="S01-day1")
    assert sorted(p.name for p in stem.parent.iterdir()) == ["u001.param", "u001.txt", "u001.ult", "u001.wav"]
    files = utterance_files(stem.with_suffix(".param"))
    assert files["stem"] == stem and files["ult"] == stem.with_suffix(".ult")
    utt = read_utterance(stem)
    assert utt.trim["frames_dropped_start"] == 3  # frames at -0.05, -0.033, -0.017 s precede the audio
    np.testing.assert_array_equal(utt.scanlines, scan[3:])
    assert (utt.text, utt.speaker) == ("a prompt", "S01-day1")
    np.testing.assert_allclose(utt.audio[:100], audio[:100], atol=1 / 32768)


def test_read_utterance_picks_one_channel(tmp_path):
    params = UltrasoundParams(8, 16, angle=0.05, fps=50.0)
    speech = (0.2 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    sync = np.where(np.arange(16000) % 320 < 20, 0.9, 0.0).astype(np.float32)  # AAA-style sync pulses
    stem = write_utterance(tmp_path / "aaa", _scan(20, params), params, np.stack([speech, sync]), 16000, "x")
    utt = read_utterance(stem, channel=0)
    np.testing.assert_allclose(utt.audio, speech[: utt.audio.size], atol=1 / 32768)
    mixed = read_utterance(stem)
    np.testing.assert_allclose(mixed.audio, (speech + sync)[: mixed.audio.size] / 2, atol=1 / 32768)
    with pytest.raises(InputError, match=r"aaa\.wav: has 2 channel\(s\); channel 2 does not exist"):
        read_utterance(stem, channel=2)


def test_read_utterance_accepts_us_txt_and_reports_missing_pieces(tmp_path):
    params = UltrasoundParams(16, 32, angle=0.05, fps=50.0)
    stem = tmp_path / "x" / "rec"
    write_utterance(stem, _scan(10, params), params, np.zeros(16000, np.float32), 16000, "hi")
    (stem.parent / "rec.param").rename(stem.parent / "recUS.txt")
    assert read_utterance(stem.parent / "recUS.txt").num_frames == 10
    (stem.parent / "rec.wav").unlink()
    with pytest.raises(InputError, match=r"rec: no audio file rec\.wav"):
        read_utterance(stem)


def test_read_utterance_ult_too_short_for_param(samples_dir, tmp_path):
    stem, params, _ = _copy_sample(samples_dir, tmp_path, "tal1", "088_aud", 1, samples_dir / "tal1" / "088_aud.param")
    stem.with_suffix(".ult").write_bytes(bytes(10000))
    with pytest.raises(InputError, match=r"088_aud\.ult: 10000 bytes is shorter than one frame \(53888 bytes"):
        read_utterance(stem)


# ---------------------------------------------------------------- fan conversion


def test_fan_matches_map_coordinates_order1():
    fan = FanConverter(TAL, size=(96, 120), order=1)
    scan = _scan(3, TAL)
    out = fan(scan)
    assert out.shape == (3, 96, 120) and out.dtype == np.float32
    # Independent reference: the polar coordinates of each output pixel from the closed-form
    # geometry, interpolated by scipy.
    rows, cols = np.mgrid[0:96, 0:120].astype(np.float64)
    x = (cols - fan.apex[1]) * fan.samples_per_pixel
    y = (rows - fan.apex[0]) * fan.samples_per_pixel
    line = np.arctan2(x, y) / TAL.angle + TAL.num_vectors // 2
    sample = np.hypot(x, y) - TAL.zero_offset
    inside = (line >= 0) & (line <= 63) & (sample >= 0) & (sample <= 841)
    assert np.array_equal(inside[2:-2, 2:-2], fan.mask[2:-2, 2:-2])
    for f in range(3):
        ref = map_coordinates(scan[f].astype(np.float64), [line, sample], order=1, mode="nearest")
        np.testing.assert_allclose(out[f][fan.mask], ref[fan.mask], atol=1e-3)
        assert (out[f][~fan.mask] == 0).all()


def test_fan_torch_matches_numpy_batched():
    params = UltrasoundParams(63, 412, zero_offset=51, angle=0.038, fps=121.618, pixels_per_mm=10.0)
    scan = _scan(6, params, seed=1).reshape(2, 3, 63, 412)
    fan = FanConverter(params, size=(64, 80))
    ref = fan(scan)
    out = fan(torch.from_numpy(scan))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 64, 80) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, atol=0.05)  # float32 grid coordinates vs float64 weights
    half = fan(torch.from_numpy(scan[0, 0]).double() / 255)
    np.testing.assert_allclose(half.numpy(), ref[0, 0] / 255, atol=2e-4)


def test_fan_geometry_arc_and_edge_line():
    size = (300, 360)
    fan = FanConverter(TAL, size=size)
    arc = np.zeros((64, 842), np.uint8)
    arc[:, 400] = 255  # a bright arc at radius ZeroOffset + 400 samples
    img = fan(arc)
    rows, cols = np.nonzero(img > 127)
    dist = np.hypot(rows - fan.apex[0], cols - fan.apex[1]) * fan.samples_per_pixel
    assert abs(np.median(dist) - (210 + 400)) < 0.6 * fan.samples_per_pixel
    assert np.abs(dist - 610).max() < 1.5 * fan.samples_per_pixel
    # The fan fits the image at one scale: it reaches the top and both sides (its corners fall
    # between pixel centres, hence the one-pixel slack).
    mask_rows, mask_cols = np.nonzero(fan.mask)
    assert mask_rows.min() <= 1 and mask_cols.min() <= 1
    # Even NumVectors: the last line is at +31 * Angle = 0.775 rad, short of the left edge's 0.8.
    right = fan.apex[1] + 1051 * math.sin(0.775) / fan.samples_per_pixel
    assert mask_cols.max() == math.floor(right + 1e-6)
    # Width binds here: 2 * (ZeroOffset + P - 1) * sin(0.8) samples over W - 1 pixels.
    assert fan.samples_per_pixel == pytest.approx(2 * 1051 * math.sin(0.8) / 359, rel=1e-6)
    # The top of the fan is the inner arc's ends, ZeroOffset * cos(0.8) below the probe centre.
    assert -fan.apex[0] * fan.samples_per_pixel == pytest.approx(210 * math.cos(0.8), rel=1e-6)
    tall = FanConverter(TAL, size=(200, 401))  # height binds; odd W puts a pixel on the axis
    assert np.nonzero(tall.mask)[0].max() == 199
    assert (199 - tall.apex[0]) * tall.samples_per_pixel == pytest.approx(210 + 841, rel=1e-6)
    # Scan line 0 lies at -floor(64/2) * Angle = -0.8 rad: to the left of the probe axis.
    edge = np.zeros((64, 842), np.uint8)
    edge[0, :] = 255
    rows, cols = np.nonzero(fan(edge) > 127)
    angles = np.arctan2((cols - fan.apex[1]), (rows - fan.apex[0]))
    assert np.median(angles) == pytest.approx(-0.8, abs=0.01)
    assert fan.mm_per_pixel == pytest.approx(fan.samples_per_pixel / 10.525)


def test_fan_spline_order_and_apex_option():
    params = UltrasoundParams(16, 40, zero_offset=10, angle=0.08, fps=60.0)
    scan = _scan(2, params)
    fan2 = FanConverter(params, size=(40, 48), order=2)
    out = fan2(scan)
    ref = map_coordinates(scan[1].astype(np.float64), [fan2.line_coords, fan2.sample_coords], order=2, mode="nearest")
    np.testing.assert_allclose(out[1][fan2.mask], ref[fan2.mask], atol=1e-3)
    torch_out = fan2(torch.from_numpy(scan))
    np.testing.assert_allclose(torch_out.numpy(), out, atol=1e-4)
    apex = FanConverter(params, size=(40, 48), include_apex=True)
    assert apex.apex[0] == pytest.approx(0.0, abs=1e-9)
    assert not apex.mask[0].any()  # nothing between the transducer centre and ZeroOffset
