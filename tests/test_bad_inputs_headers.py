"""Numbers in file headers, checked where they enter (articulate.validate): every numeric key of a .param /
US.txt file (enumerated from the reader's own key table), audio and video headers, NIfTI/npz header fields;
suspicious but valid inputs are read with one warning line; JSON output is strict JSON."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from badinput_helpers import assert_ok, assert_refused, run, sequence, tone, write_wav

from articulate.readers.ultrasound import _BOUNDS, _KEYS, UltrasoundParams, write_param, write_ult


def _stem(tmp, name="u", lines: dict | None = None, extra_lines=()):
    """A valid .ult/.param/.wav stem, with ``lines`` replacing keys of the .param (value as text)."""
    params = UltrasoundParams(num_vectors=16, pix_per_vector=32, zero_offset=8, angle=0.04, pixels_per_mm=2.0, fps=50.0,
                              time_first_frame=0.1)
    write_param(tmp / f"{name}.param", params)
    text = (tmp / f"{name}.param").read_text().splitlines()
    for key, value in (lines or {}).items():
        text = [f"{key}={value}" if t.split("=")[0] == key else t for t in text]
    (tmp / f"{name}.param").write_text("\n".join([*text, *extra_lines]) + "\n")
    write_ult(tmp / f"{name}.ult", np.random.default_rng(0).integers(0, 255, (12, 16, 32), dtype=np.uint8))
    write_wav(tmp / f"{name}.wav", tone(0.5, 16000), 16000)
    return tmp / name


def _param_cases():
    """Every numeric .param key with values it must refuse (enumerated from the reader's key table)."""
    out = []
    for key, (_, kind) in _KEYS.items():
        values = ["nan", "inf", "-inf", "1e999"]
        bounds = _BOUNDS[key]
        if bounds is None:  # the frame rate
            values += ["0", "-60", "2e6"]
        else:
            if bounds.get("low") is not None:
                values.append(str(bounds["low"]) if bounds.get("low_open") else str(bounds["low"] - 1))
            if bounds.get("high") is not None:
                values.append(str(bounds["high"] * 2 + 1))
        if kind is int:
            values.append("2.5")
        out += [(key, v) for v in values]
    return out


@pytest.mark.parametrize("key, value", _param_cases())
def test_every_param_number_is_checked(key, value, tmp_path, capfd):
    stem = _stem(tmp_path, lines={key: value})
    res = run(capfd, "inspect", stem)
    assert_refused(res, "inspect", stem.with_suffix(".param"), key)


def test_param_keys_given_twice_and_implausible_rates_warn(tmp_path, capfd):
    stem = _stem(tmp_path, lines={"FramesPerSec": "5000"}, extra_lines=["NumVectors=16"])
    res = run(capfd, "inspect", stem)
    assert_ok(res)
    warnings = [line for line in res.err.splitlines() if line.startswith("warning: ")]
    assert any("NumVectors is given twice (lines 1 and 10): using line 10" in w for w in warnings), res.err
    assert any("implausible" in w and "5000 fps" in w for w in warnings), res.err


def test_a_wav_claiming_1_hz_is_read_with_a_warning(tmp_path, capfd):
    wav = tmp_path / "one_hz.wav"
    sf.write(str(wav), np.random.default_rng(0).standard_normal(16).astype(np.float32) * 0.1, 1)
    res = run(capfd, "inspect", wav)
    assert_ok(res)
    warnings = [line for line in res.err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {wav}: implausible sample rate of 1 Hz (recordings use 4,000-384,000 Hz): durations "
                        "computed from it are wrong if the header is"]


def test_float_audio_far_outside_full_scale_is_refused(tmp_path, capfd):
    wav = tmp_path / "loud.wav"
    sf.write(str(wav), np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 1e30, 16000, subtype="FLOAT")
    assert_refused(run(capfd, "inspect", wav), "inspect", wav, "float audio must lie in [-1, 1]")


def test_video_frame_rate_comes_from_its_stream_not_the_file_name(tmp_path, capfd):
    from articulate.readers.video import read_video, video_info, write_video

    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48), dtype=np.uint8)
    write_video(tmp_path / "a.mp4", frames, 29.97)
    named = tmp_path / "take_articulate_fps=1000.mp4"
    shutil.copy(tmp_path / "a.mp4", named)
    assert video_info(named)["fps"] == pytest.approx(29.97)  # the exact rate write_video stored, not the name's
    assert read_video(named)[1] == pytest.approx(29.97)
    res = run(capfd, "inspect", named, "--json")
    assert_ok(res)
    info = json.loads(res.out)
    assert info["fps"] == pytest.approx(29.97) and info["variable_frame_rate"] is False


def test_variable_frame_rate_video_warns(tmp_path, capfd):
    import subprocess

    from PIL import Image

    from articulate.readers.container import ffmpeg_exe

    lines = ["ffconcat version 1.0"]
    for i in range(10):
        Image.fromarray((np.random.default_rng(i).random((32, 48)) * 255).astype(np.uint8)).save(tmp_path / f"f{i}.png")
        lines += [f"file f{i}.png", f"duration {0.1 if i % 3 == 0 else 0.02}"]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    video = tmp_path / "vfr.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "concat", "-i", str(tmp_path / "list.txt"), "-fps_mode", "vfr",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    res = run(capfd, "inspect", video)
    assert_ok(res)
    assert f"warning: {video}: variable frame rate: frames are" in res.err
    cfr = tmp_path / "cfr.mp4"
    from articulate.readers.video import write_video

    write_video(cfr, np.zeros((10, 32, 48), np.uint8), 30.0)
    res = run(capfd, "inspect", cfr)
    assert_ok(res)
    assert "variable frame rate" not in res.err


def test_overlapping_textgrid_intervals_warn(tmp_path, capfd):
    tg = tmp_path / "x.TextGrid"
    tg.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n1\n<exists>\n1\n"IntervalTier"\n"words"\n'
                  '0\n1\n3\n0\n0.5\n"ba"\n0.4\n0.8\n"da"\n0.8\n1\n""\n')
    res = run(capfd, "inspect", tg)
    assert_ok(res)
    assert f"warning: {tg}: tier 'words': intervals 1 (0-0.5 s) and 2 (0.4-0.8 s) overlap; read as given" in res.err


@pytest.mark.parametrize("field, value", [("frame_s", np.nan), ("frame_s", np.inf), ("frame_s", -1.0),
                                          ("pixel_mm", [np.nan, 1.0]), ("pixel_mm", [0.0, 1.0])])
def test_npz_header_numbers_are_checked(field, value, tmp_path, capfd):
    path = tmp_path / "seq.npz"
    np.savez(path, frames=sequence(), **{field: np.asarray(value)})
    assert_refused(run(capfd, "inspect", path), "inspect", path, field)


def _strict(text: str):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_score_json_is_strict_json(tmp_path, capfd):
    img = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    np.save(tmp_path / "a.npy", img)
    res = run(capfd, "score", "--ref", tmp_path / "a.npy", "--pred", tmp_path / "a.npy", "--metrics", "psnr,rmse", "--json")
    assert_ok(res)
    assert _strict(res.out) == {"psnr": "inf", "rmse": 0.0}
    np.save(tmp_path / "flat.npy", np.full((4, 16, 16), 0.5, np.float32))  # Corr2D of a constant image: no value
    res = run(capfd, "score", "--ref", tmp_path / "flat.npy", "--pred", tmp_path / "flat.npy", "--metrics", "corr2d", "--json")
    assert_ok(res)
    assert _strict(res.out) == {"corr2d": None}


def test_inspect_json_is_strict_json(tmp_path, capfd):
    wav = write_wav(tmp_path / "quiet.wav", tone(0.5, 16000, peak=1e-6), 16000)
    res = run(capfd, "inspect", wav, "--json")
    assert res.rc == 0
    assert _strict(res.out)["sample_rate"] == 16000  # level fields of a near-silent file included
