"""Bad and unusual ultrasound (`.ult` + `.param` / `US.txt`) through `articulate inspect`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from badinput_helpers import assert_ok, assert_refused, run, tone

from articulate.readers.ultrasound import UltrasoundParams, write_utterance

V, P, FPS, SR = 8, 16, 60.0, 16000
FRAME = V * P
GOOD_PARAM = "NumVectors=8\nPixPerVector=16\nAngle=0.02\nFramesPerSec=60\n"


def utterance(tmp, name="utt", frames=30, seconds=0.5):
    """An UltraSuite stem: ``frames`` frames of 8 x 16 scan lines at 60 fps and ``seconds`` of audio."""
    scan = np.random.default_rng(0).integers(0, 255, (frames, V, P)).astype(np.uint8)
    write_utterance(tmp / name, scan, UltrasoundParams(V, P, angle=0.02, fps=FPS), tone(seconds, SR), SR, "a prompt")
    return tmp / f"{name}.ult"


def _set_param(ult, text):
    param = ult.with_suffix(".param")
    param.write_text(text)
    return param


def _shorter_than_a_frame(tmp):
    ult = utterance(tmp)
    ult.write_bytes(bytes(FRAME - 28))
    return ult, ult, f"{FRAME - 28} bytes is shorter than one frame ({FRAME} bytes = 8 x 16 at 8 bits)"


def _not_whole_frames(tmp):
    ult = utterance(tmp)
    ult.write_bytes(ult.read_bytes()[:-7])
    return ult, ult, f"is not a whole number of frames of {FRAME} bytes (8 x 16): 29 frames + {FRAME - 7} bytes"


def _other_geometry(tmp):
    """The .param says 8 scan lines, the .ult holds 30 frames of 9 (written with another setting)."""
    ult = utterance(tmp)
    ult.write_bytes(bytes(30 * 9 * P))
    return ult, ult, "is not a whole number of frames"


def _missing_keys(tmp):
    ult = utterance(tmp)
    return ult, _set_param(ult, "NumVectors=8\nPixPerVector=16\n"), "missing Angle, FramesPerSec"


def _not_a_number(tmp):
    ult = utterance(tmp)
    return ult, _set_param(ult, "NumVectors=8\nPixPerVector=sixteen\nAngle=0.02\nFramesPerSec=60\n"), \
        "line 2: PixPerVector='sixteen' is not a number"


def _fractional_count(tmp):
    ult = utterance(tmp)
    return ult, _set_param(ult, GOOD_PARAM.replace("NumVectors=8", "NumVectors=8.5")), "should be a whole number"


def _not_key_value(tmp):
    ult = utterance(tmp)
    return ult, _set_param(ult, GOOD_PARAM + "just some words\n"), "line 5: expected key=value"


def _bits_per_pixel(tmp):
    ult = utterance(tmp)
    _set_param(ult, GOOD_PARAM + "BitsPerPixel=16\n")
    return ult, ult, "BitsPerPixel=16 is not supported"


def _negative_fps(tmp):
    ult = utterance(tmp)
    return ult, _set_param(ult, GOOD_PARAM.replace("FramesPerSec=60", "FramesPerSec=-60")), \
        "line 4: FramesPerSec must be above 0, got -60"


def _zero_vectors(tmp):
    ult = utterance(tmp)
    return ult, _set_param(ult, GOOD_PARAM.replace("NumVectors=8", "NumVectors=0")), "line 1: NumVectors must be at least 1, got 0"


def _binary_param(tmp):
    ult = utterance(tmp)
    param = ult.with_suffix(".param")
    param.write_bytes(bytes(range(256)))
    return ult, param, "binary data where a text file was expected"


def _ult_without_param(tmp):
    ult = utterance(tmp)
    ult.with_suffix(".param").unlink()
    return ult, ult, "no scan parameter file beside it (utt.param or uttUS.txt)"


REFUSED = {"ult shorter than one frame": _shorter_than_a_frame, "ult not whole frames": _not_whole_frames,
           "ult of another geometry": _other_geometry, "param missing keys": _missing_keys,
           "param non-numeric value": _not_a_number, "param fractional count": _fractional_count,
           "param line not key=value": _not_key_value, "BitsPerPixel 16": _bits_per_pixel,
           "negative FramesPerSec": _negative_fps, "NumVectors 0": _zero_vectors, "binary param": _binary_param,
           "ult without param": _ult_without_param}


@pytest.mark.parametrize("case", list(REFUSED))
def test_inspect_refuses_bad_ultrasound(case, tmp_path, capfd):
    ult, named, problem = REFUSED[case](tmp_path)
    assert_refused(run(capfd, "inspect", ult), "inspect", named, problem)


@pytest.mark.parametrize("case", ["ult not whole frames", "param missing keys", "ult without param"])
def test_dataset_folder_with_a_bad_utterance_is_refused(case, tmp_path, capfd):
    """`inspect DATA` reads the recordings it shows: a folder is refused as its bad file would be."""
    speaker = tmp_path / "spk1"
    speaker.mkdir()
    ult, named, problem = REFUSED[case](speaker)
    assert_refused(run(capfd, "inspect", tmp_path), "inspect", named, problem)


def _inspect_json(capfd, path) -> dict:
    res = run(capfd, "inspect", path, "--json")
    assert_ok(res)
    return json.loads(res.out)


def test_ult_longer_than_its_audio_is_trimmed(tmp_path, capfd):
    ult = utterance(tmp_path, frames=90, seconds=0.5)  # 1.5 s of ultrasound, 0.5 s of audio
    info = _inspect_json(capfd, ult)["synchronised"]
    assert (info["frames"], info["frames_dropped_end"]) == (30, 60)
    assert info["trimmed"] == "ultrasound runs 1.000 s past the end of the audio: last 60 frame(s) dropped"


def test_comma_decimals_as_aaa_writes_them(tmp_path, capfd):
    ult = utterance(tmp_path)
    (tmp_path / "uttUS.txt").write_text(
        "NumVectors=8\nPixPerVector=16\nAngle=0,02\nFramesPerSec=59,5\nTimeInSecsOfFirstFrame=0,1\n", encoding="latin-1")
    ult.with_suffix(".param").unlink()  # US.txt is the only parameter file
    info = _inspect_json(capfd, ult)
    scan = info["scan_parameters"]
    assert (scan["Angle"], scan["FramesPerSec"], scan["TimeInSecsOfFirstFrame"]) == (0.02, 59.5, 0.1)
    assert info["synchronised"]["first_frame_s"] == 0.1


def test_param_without_ult(tmp_path, capfd):
    """A lone .param inspects (its scan parameters); a folder of lone .param files has no recording."""
    (tmp_path / "spk").mkdir()
    param = tmp_path / "spk" / "lone.param"
    param.write_text(GOOD_PARAM)
    info = _inspect_json(capfd, param)
    assert info["scan_parameters"]["NumVectors"] == 8 and "no lone.ult beside it" in info["note"]
    assert_refused(run(capfd, "inspect", tmp_path), "inspect", tmp_path, "no recordings found",
                   f"1 .param file(s) have no .ult beside them (e.g. {param})")


def test_real_aaa_exports(samples_dir, capfd):
    aaa = samples_dir / "aaa-satkit"
    info = _inspect_json(capfd, aaa / "File009.ult")
    assert info["frames"] == 250 and info["scan_parameters"]["NumVectors"] == 63
    assert "past the end of the audio" in info["synchronised"]["trimmed"]
    folder = _inspect_json(capfd, aaa)
    assert folder["recordings"] == 2 and {r["frames"] for r in folder["first_recordings"]} == {250, 229}
