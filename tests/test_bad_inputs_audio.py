"""Bad and unusual audio through `articulate inspect`, `synthesize-uti` and `score`.

Refusals: exit 1, one `articulate <cmd>: error: <file>: <problem>` line, no traceback, nothing written.
Valid unusual audio (24-bit, 6 channels, 8 / 96 kHz, near-silent) must work.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from badinput_helpers import assert_ok, assert_refused, error_lines, listing, run, tone, write_wav

SR = 16000


def _truncated_data(tmp):
    """The data chunk declares 0.5 s but the file stops half-way (a cut-off copy)."""
    full = write_wav(tmp / "full.wav", tone(0.5, SR), SR).read_bytes()
    path = tmp / "truncated.wav"
    path.write_bytes(full[: len(full) // 2])
    return path, "truncated WAV: header declares 16000 bytes of audio but only"


def _cut_in_header(tmp):
    path = tmp / "header_only.wav"
    path.write_bytes(write_wav(tmp / "full.wav", tone(0.5, SR), SR).read_bytes()[:30])
    return path, "not a readable audio file"


def _zero_bytes(tmp):
    path = tmp / "zero_bytes.wav"
    path.write_bytes(b"")
    return path, "empty file (0 bytes)"


def _no_samples(tmp):
    path = tmp / "no_samples.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    return path, "holds no samples"


def _nan_floats(tmp):
    wav = tone(0.5, SR)
    wav[100:110] = np.nan
    return write_wav(tmp / "nan.wav", wav, SR, "FLOAT"), "NaN or infinite samples"


def _text(tmp):
    path = tmp / "notes.wav"
    path.write_text("speaker 3, session 2: this is a text file\n" * 20)
    return path, "not a readable audio file"


def _all_zero(tmp):
    return write_wav(tmp / "zeros.wav", np.zeros(SR, np.float32), SR), "every sample is zero"


def _shorter_than_a_frame(tmp):
    return write_wav(tmp / "5ms.wav", tone(0.005, SR), SR), "shorter than one video frame"


def _video_without_audio(tmp):
    from articulate.readers.video import write_video

    frames = (np.random.default_rng(0).random((8, 32, 32)) * 255).astype(np.uint8)
    return write_video(tmp / "silent_film.mp4", frames, 30.0), "video has no audio track"


def _not_found(tmp):
    return tmp / "missing.wav", "not found"


UTI_REFUSED = {"truncated data chunk": _truncated_data, "cut inside the header": _cut_in_header,
               "0-byte file": _zero_bytes, "0 samples": _no_samples, "NaN floats": _nan_floats,
               "text named .wav": _text, "all-zero samples": _all_zero, "shorter than one frame": _shorter_than_a_frame,
               "video without audio track": _video_without_audio, "missing file": _not_found}


@pytest.mark.parametrize("case", list(UTI_REFUSED))
def test_synthesize_uti_refuses_bad_audio(case, tiny_checkpoints, tmp_path, capfd):
    audio, problem = UTI_REFUSED[case](tmp_path)
    out = tmp_path / "out"
    res = run(capfd, "synthesize-uti", "--ckpt", tiny_checkpoints.wav2uti_dnn, "--audio", audio, "--out", out / "t.mp4")
    assert_refused(res, "synthesize-uti", audio, problem)
    assert listing(out) == set()


@pytest.mark.parametrize("case", ["truncated data chunk", "cut inside the header", "0-byte file", "0 samples",
                                  "NaN floats", "text named .wav"])
def test_inspect_refuses_bad_audio(case, tmp_path, capfd):
    audio, problem = UTI_REFUSED[case](tmp_path)
    assert_refused(run(capfd, "inspect", audio), "inspect", audio, problem)


def test_score_refuses_a_text_file_posing_as_wav(tmp_path, capfd):
    ref = write_wav(tmp_path / "ref.wav", tone(1.0, SR), SR)
    pred, problem = _text(tmp_path)
    assert_refused(run(capfd, "score", "--ref", ref, "--pred", pred, "--metrics", "pesq"), "score", pred, problem)


def _frames_written(res, out) -> int:
    assert_ok(res)
    return int(np.load(out.with_suffix(".npy")).shape[0])


@pytest.mark.parametrize("case", ["24-bit PCM", "6 channels", "8 kHz", "96 kHz"])
def test_synthesize_uti_accepts_unusual_valid_audio(case, tiny_checkpoints, tmp_path, capfd):
    seconds = 0.4
    if case == "24-bit PCM":
        path = write_wav(tmp_path / "a.wav", tone(seconds, 44100), 44100, "PCM_24")
    elif case == "6 channels":
        path = write_wav(tmp_path / "a.wav", np.stack([tone(seconds, SR, f0=150 + 20 * c) for c in range(6)]), SR)
    else:
        sr = 8000 if case == "8 kHz" else 96000
        path = write_wav(tmp_path / "a.wav", tone(seconds, sr), sr)
    info = sf.info(str(path))
    out = tmp_path / "out" / "t.mp4"
    res = run(capfd, "synthesize-uti", "--ckpt", tiny_checkpoints.wav2uti_dnn, "--audio", path, "--out", out)
    assert _frames_written(res, out) == round(info.frames / info.samplerate * 60)  # the model's 60 fps
    assert "warning" not in res.err  # a clean recording draws no level warning
    assert listing(out.parent) == {"t.mp4", "t.npy"}


def test_inspect_reports_24_bit_six_channel_audio(tmp_path, capfd):
    wav = np.stack([tone(0.3, 96000, f0=150 + 20 * c) for c in range(6)])
    path = write_wav(tmp_path / "six.wav", wav, 96000, "PCM_24")
    res = run(capfd, "inspect", path, "--json")
    assert_ok(res)
    import json

    info = json.loads(res.out)
    assert (info["channels"], info["sample_rate"], info["samples"]) == (6, 96000, wav.shape[1])
    assert "PCM_24" in info["format"]


def test_near_silent_audio_warns_once_and_still_works(tiny_checkpoints, tmp_path, capfd):
    wav = tone(0.4, SR, peak=10 ** (-69 / 20))  # peak -69 dBFS
    path = write_wav(tmp_path / "quiet.wav", wav, SR, "FLOAT")
    out = tmp_path / "out" / "t.mp4"
    res = run(capfd, "synthesize-uti", "--ckpt", tiny_checkpoints.wav2uti_dnn, "--audio", path, "--out", out)
    assert _frames_written(res, out) == round(0.4 * 60)
    warnings = [line for line in res.err.splitlines() if "warning" in line]
    assert warnings == [f"articulate synthesize-uti: warning: {path}: near-silent: peak -69.0 dBFS is below -40 dBFS "
                        f"(RMS {20 * np.log10(np.sqrt(np.mean(wav.astype(np.float64) ** 2))):.1f} dBFS); check the "
                        "recording gain or the channel"]
    assert not error_lines(res.err, "synthesize-uti")
    # inspect flags the same file the same way
    res = run(capfd, "inspect", path)
    assert_ok(res)
    assert "near-silent: peak -69.0 dBFS" in res.err


# ------------------------------------------------------------------------------------ score's other inputs


def _array(tmp, name, arr):
    np.save(tmp / name, arr)
    return tmp / name


def _text_npy(tmp):
    (tmp / "p.npy").write_text("0.1 0.2 0.3\n")
    return tmp / "p.npy"


SCORE_REFUSED = {
    "NaN in the prediction": (lambda t: _array(t, "p.npy", np.full((4, 16, 16), np.nan, np.float32)),
                              "array contains NaN or infinite values"),
    "text named .npy": (_text_npy, "not a readable .npy array (no NumPy header)"),
    "strings, not numbers": (lambda t: _array(t, "p.npy", np.array(["a", "b"])), "expected a numeric array, got dtype <U1"),
    "another shape": (lambda t: _array(t, "p.npy", np.zeros((5, 16, 16), np.float32)), "shape (5, 16, 16) differs"),
    "audio against frames": (lambda t: write_wav(t / "p.wav", tone(0.5, SR), SR), "cannot score a audio file against"),
}


@pytest.mark.parametrize("case", list(SCORE_REFUSED))
def test_score_refuses_bad_predictions(case, tmp_path, capfd):
    ref = _array(tmp_path, "ref.npy", np.random.default_rng(0).random((4, 16, 16)).astype(np.float32))
    make, problem = SCORE_REFUSED[case]
    pred = make(tmp_path)
    res = run(capfd, "score", "--ref", ref, "--pred", pred, "--metrics", "rmse,psnr")
    assert_refused(res, "score", pred, problem)
    assert res.out == ""  # no partial table


def test_score_folder_with_an_unmatched_reference(tmp_path, capfd):
    for name in ("a", "b"):
        (tmp_path / "ref").mkdir(exist_ok=True)
        _array(tmp_path / "ref", f"{name}.npy", np.zeros((4, 8, 8), np.float32))
    (tmp_path / "pred").mkdir()
    _array(tmp_path / "pred", "a.npy", np.zeros((4, 8, 8), np.float32))
    res = run(capfd, "score", "--ref", tmp_path / "ref", "--pred", tmp_path / "pred", "--metrics", "rmse")
    assert_refused(res, "score", tmp_path / "pred" / "b.npy", "no prediction for reference", "(1 of 2 references unmatched)")
