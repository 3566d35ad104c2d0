"""Ultrasound as video: fan detection (against FanConverter's own mask), probe orientation, aspect-
preserving resize (against PIL), read_video_utterance's audio choice / synchronisation / trimming,
the four real UltraX videos, refusals, and the wav2uti DataModule's use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from articulate.errors import InputError
from articulate.readers.audio import read_audio, write_audio
from articulate.readers.fan import detect_fan, fit_frames, write_fan_png
from articulate.readers.ultrasound import FanConverter, UltrasoundParams, write_param
from articulate.readers.video import write_video
from articulate.readers.video_utterance import read_video_utterance

SR = 16000
AAA = UltrasoundParams(63, 256, zero_offset=32, angle=0.038, fps=50.0)  # the AAA samples' geometry
FAN_SIZE = (150, 260)
ORIGIN = (30, 50)  # (x, y) of the fan render inside the 320 x 240 screen


def _scanlines(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v, j = np.arange(63)[:, None], np.arange(256)[None]
    out = []
    for k in range(frames):
        tongue = 120 + 30 * np.sin(2 * np.pi * k / 20) + 20 * np.cos(v / 10)
        out.append(60 + 40 * rng.random((63, 256)) + 150 * np.exp(-((j - tongue) ** 2) / 30))
    return np.clip(np.stack(out), 0, 255).astype(np.float32)


def _screen(scan: np.ndarray, probe_bottom: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A screen capture: the fan (probe at the bottom when asked), a depth scale, a text bar and a
    logo; returns (screen frames, the fan render with the probe at the top, its true mask on screen)."""
    fan = FanConverter(AAA, size=FAN_SIZE)
    render = np.clip(np.rint(fan(scan)), 0, 255).astype(np.uint8)
    screen = np.zeros((scan.shape[0], 240, 320), np.uint8)
    x, y = ORIGIN
    screen[:, y:y + FAN_SIZE[0], x:x + FAN_SIZE[1]] = render[:, ::-1] if probe_bottom else render
    truth = np.zeros((240, 320), bool)
    truth[y:y + FAN_SIZE[0], x:x + FAN_SIZE[1]] = fan.mask[::-1] if probe_bottom else fan.mask
    for d in range(0, 150, 15):  # depth scale marks right of the fan
        screen[:, y + d:y + d + 2, 295:298] = 255
    screen[:, 5:20, 5:120] = 200  # patient / settings text bar
    screen[:, 210:235, 240:315] = 128  # logo
    return screen, render, truth


def test_fan_detection_matches_the_true_mask_and_finds_the_probe(tmp_path):
    scan = _scanlines(40)
    screen, _, truth = _screen(scan)
    fan = detect_fan(screen)
    assert (fan.mask == truth).mean() > 0.999  # the marks, the text bar and the logo are outside
    assert not fan.mask[5:20, 5:120].any() and not fan.mask[:, 290:].any()
    rows, cols = np.nonzero(truth)
    assert fan.bbox == (cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
    apex = FanConverter(AAA, size=FAN_SIZE).apex  # (row, col) of the probe centre in the probe-top render
    expect = (ORIGIN[1] + FAN_SIZE[0] - 1 - apex[0], ORIGIN[0] + apex[1])
    assert fan.apex_side == "bottom" and fan.method == "sides"
    assert fan.apex == pytest.approx(expect, abs=1.0)
    assert fan.fraction == pytest.approx(truth.mean(), rel=0.01)
    up = detect_fan(_screen(scan, probe_bottom=False)[0])
    assert up.apex_side == "top" and up.apex[0] == pytest.approx(ORIGIN[1] + apex[0], abs=1.0)
    png = write_fan_png(tmp_path / "fan.png", screen[0], fan)
    img = np.asarray(Image.open(png))
    inside, outside = img[truth].astype(float), img[~truth].astype(float)
    assert img.shape == (240, 320, 3) and inside[:, 1].mean() > inside[:, 0].mean() + 50  # green tint inside
    assert outside[:, 1].mean() < 0.6 * screen[0][~truth].mean() + 5  # the rest darkened (but for the box lines)
    with pytest.raises(ValueError, match="no pixel changes"):
        detect_fan(np.repeat(screen[:1], 5, axis=0))


def test_fit_frames_keeps_the_aspect_ratio_like_pil():
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (3, 134, 258)).astype(np.uint8)
    out = fit_frames(wide, 64)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
    new_h = round(134 * 64 / 258)  # 33 rows: one scale for both axes
    ref = np.stack([np.asarray(Image.fromarray(f).resize((64, new_h), Image.BILINEAR)) for f in wide])
    assert np.abs(out[:, :new_h].astype(int) - ref).max() <= 1  # torch's antialiased bilinear is PIL's
    assert (out[:, new_h:] == 0).all()  # padding below: top-aligned like FanConverter renders
    tall = np.full((2, 40, 20), 1.0, np.float32)
    t = fit_frames(torch.from_numpy(tall), (16, 16))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert torch.allclose(t[:, :, 4:12], torch.ones(2, 16, 8)) and (t[:, :, :4] == 0).all() and (t[:, :, 12:] == 0).all()


def _video_with_audio(tmp_path, name="rec", frames=60, fps=50.0, probe_bottom=True, audio=True):
    scan = _scanlines(frames)
    screen, render, _ = _screen(scan, probe_bottom)
    sound = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(frames / fps * SR)) / SR)).astype(np.float32)
    path = write_video(tmp_path / f"{name}.mp4", screen, fps, audio=sound if audio else None, sr=SR if audio else None,
                       crf=4)
    return path, scan, render, sound


def test_synthetic_screen_capture_end_to_end(tmp_path):
    path, scan, render, sound = _video_with_audio(tmp_path)
    utt = read_video_utterance(path)
    assert (utt.audio_source, utt.probe_side, utt.sync["source"]) == ("container", "bottom", "container timestamps")
    assert utt.t0 == pytest.approx(0.0, abs=1e-6) and utt.fps == 50.0 and utt.sr == SR
    # flipped back and cropped to the fan: FanConverter's probe-at-top render, up to H.264 error
    fan = FanConverter(AAA, size=FAN_SIZE)
    rows, cols = np.nonzero(fan.mask)
    expect = render[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert utt.frames.shape == (60, *expect.shape[1:])
    assert np.abs(utt.frames.astype(int) - expect).mean() < 2.0
    assert (utt.frames[:, ~fan.mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]] == 0).all()
    assert utt.num_frames / utt.fps == pytest.approx(utt.audio.shape[0] / SR, abs=1 / SR)
    assert np.corrcoef(utt.audio[1000:-1000], sound[1000:utt.audio.shape[0] - 1000])[0, 1] > 0.999
    # into the DataModule's square frames: the same picture as FanConverter rendering the scan lines at 64 px
    square = fit_frames(utt.frames, 64).astype(np.float32)
    direct = FanConverter(AAA, size=(64, 64))(scan)
    assert np.abs(square - direct)[:, direct.any(axis=0)].mean() < 12  # resampling differences only
    assert np.corrcoef(square.ravel(), direct.ravel())[0, 1] > 0.95
    # an explicit box and orientation give the whole render
    boxed = read_video_utterance(path, roi=(ORIGIN[0], ORIGIN[1], FAN_SIZE[1], FAN_SIZE[0]), probe="bottom")
    assert boxed.fan is None and boxed.frames.shape == render.shape
    assert np.abs(boxed.frames.astype(int) - render).mean() < 2.0
    full = read_video_utterance(path, roi="full", probe="top")
    assert full.frames.shape == (60, 240, 320) and full.probe_side == "top"


def test_param_beside_the_video_sets_rate_and_offset_and_a_wav_wins(tmp_path):
    path, _, _, sound = _video_with_audio(tmp_path)
    # a TaL-style export: the .param says the frames ran at 49 fps and started 0.2 s into the audio
    write_param(tmp_path / "rec.param", UltrasoundParams(63, 256, zero_offset=32, angle=0.038, fps=49.0,
                                                         time_first_frame=0.2))
    utt = read_video_utterance(path, sr=SR)
    assert utt.sync["source"] == "param (rec.param)" and utt.fps == 49.0 and utt.t0 == 0.2
    assert "49" in utt.sync["note"] and "50" in utt.sync["note"]
    # frames k with 0.2 + (k + 1) / 49 <= 1.2 s of audio: 49 of 60 kept; the audio starts at 0.2 s
    assert utt.trim["frames_dropped_end"] == 60 - 49 and utt.trim["samples_dropped_start"] == round(0.2 * SR)
    assert utt.audio.shape[0] == round((0.2 + 49 / 49.0) * SR) - round(0.2 * SR)
    # a .wav beside the video is used instead of the container's audio
    click = np.zeros(2 * SR, np.float32)
    click[SR] = 0.9
    write_audio(tmp_path / "rec.wav", click, SR)
    (tmp_path / "rec.param").unlink()
    (tmp_path / "rec.txt").write_text("say hello\n01/01/2020\nspeaker-7\n")
    utt = read_video_utterance(path)
    assert utt.audio_source == "wav" and utt.audio_path.name == "rec.wav"
    wav, _ = read_audio(tmp_path / "rec.wav")
    np.testing.assert_array_equal(utt.audio, wav[: utt.audio.shape[0]])
    assert (utt.text, utt.text_source, utt.speaker) == ("say hello", "txt", "speaker-7")
    assert read_video_utterance(path, text="given words").text == "given words"


def test_refusals_name_the_file(tmp_path):
    path, *_ = _video_with_audio(tmp_path, name="silent", audio=False)
    with pytest.raises(InputError, match=r"silent\.mp4: no audio: the video has no audio track and there is no silent\.wav"):
        read_video_utterance(path)
    still = write_video(tmp_path / "still.mp4", np.full((20, 32, 32), 90, np.uint8), 20,
                        audio=np.zeros(SR, np.float32), sr=SR)
    with pytest.raises(InputError, match=r"still\.mp4: no pixel changes over time.*pass roi=\(x, y, w, h\) or roi='full'"):
        read_video_utterance(still)
    moving, *_ = _video_with_audio(tmp_path, name="late")
    write_param(tmp_path / "late.param", UltrasoundParams(63, 256, angle=0.038, fps=50.0, time_first_frame=5.0))
    with pytest.raises(InputError, match=r"late\.mp4: video .* and audio .* do not overlap"):
        read_video_utterance(moving)
    (tmp_path / "late.param").unlink()
    with pytest.raises(ValueError, match=r"roi \(x=300, y=0, w=100, h=100\) does not fit in frames of 320 x 240"):
        read_video_utterance(moving, roi=(300, 0, 100, 100))


@pytest.mark.parametrize("name", ["Ultrax_TD_001", "Ultrax_TD_002", "Ultrax_TD_003", "Ultrax_TD_004"])
def test_real_ultrax_videos(samples_dir, name):
    utt = read_video_utterance(samples_dir / "ultrax-video" / f"{name}.avi", sr=SR)
    assert utt.audio_source == "container" and utt.sync["source"] == "container timestamps" and utt.t0 == 0.0
    assert utt.fps == pytest.approx(121.49) and utt.probe_side == "bottom"  # the README: probe at the bottom
    x, y, w, h = utt.roi
    assert (x, w) == (0, 320) and 30 <= y <= 34 and 166 <= h <= 171  # the fan spans the width, ~169 rows
    assert utt.frames.shape[1:] == (h, w) and 0.45 < utt.fan.fraction < 0.5
    assert utt.trim["frames_dropped_end"] <= 1 and utt.trim["frames_dropped_start"] == 0
    assert abs(utt.num_frames / utt.fps - utt.audio.shape[0] / SR) < 1 / utt.fps
    # probe at the top after the flip: the narrow end of the fan is now in the first rows
    widths = (utt.frames.max(axis=0) > 12).sum(axis=1)
    assert widths[: h // 5].mean() < widths[-h // 5:].mean()


def test_wav2uti_datamodule_loads_a_video_recording(tmp_path):
    from articulate.readers.dataset_index import index_dataset
    from articulate.transforms.clips import ClipGeometry
    from datamodules.wav2uti import Wav2UTIDataModule

    spk = tmp_path / "spk"
    spk.mkdir()
    _video_with_audio(spk, name="r1", frames=60)
    (spk / "r1.txt").write_text("a prompt\n")
    rec = index_dataset(tmp_path)[0]
    assert rec.extra["audio_source"] == "container" and rec.transcript == "a prompt"
    dm = Wav2UTIDataModule(data_dir=str(tmp_path), clips=ClipGeometry(resolution=64, fps=60.0), sample_rate=SR)
    utt = dm._load(rec)
    assert utt.frames.shape[1:] == (64, 64) and utt.frames.dtype == np.uint8 and utt.text == "a prompt"
    assert utt.frames.shape[0] == int(60 / 50.0 * 60.0)  # 1.2 s resampled to 60 fps
    assert utt.audio.shape[0] == round(utt.frames.shape[0] * SR / 60.0)
    assert (utt.frames[:, 36:] == 0).all() and utt.frames[:, :30].mean() > 20  # fan on top, black padding below
