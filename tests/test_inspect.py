"""`articulate inspect`: real samples, synthetic utterances and datasets, and the refusals
(truncated WAV, non-NIfTI .nii.gz, .ult too short for its .param) as exit code 1 + file name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from articulate.cli import main as cli
from articulate.readers.audio import write_audio
from articulate.readers.inspect import inspect_path
from articulate.readers.mri import write_mri
from articulate.readers.ultrasound import UltrasoundParams, write_ult, write_utterance
from articulate.readers.video import write_video


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(["inspect", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _json(capsys, path) -> dict:
    rc, out, err = _run(capsys, path, "--json")
    assert rc == 0, err
    assert len(out.strip().splitlines()) == 1  # one JSON object on one line
    return json.loads(out)


def test_real_tal_audio(samples_dir, capsys):
    info = _json(capsys, samples_dir / "tal1" / "088_aud.wav")
    assert (info["kind"], info["sample_rate"], info["samples"], info["channels"]) == ("audio", 48000, 262912, 1)
    assert info["duration_s"] == pytest.approx(262912 / 48000, abs=1e-4)
    assert info["transcript"] == "The mango and the papaya are in a bowl."
    rc, text, _ = _run(capsys, samples_dir / "tal1" / "088_aud.wav")
    assert rc == 0 and "sample_rate" in text and "48000" in text and "5.4773" in text


def test_real_param_files(samples_dir, capsys):
    tal = _json(capsys, samples_dir / "tal1" / "088_aud.param")
    assert tal["kind"] == "ultrasound" and tal["files"]["ult"] is None
    assert tal["scan_parameters"]["NumVectors"] == 64 and tal["scan_parameters"]["PixPerVector"] == 842
    assert tal["frame_bytes"] == 64 * 842 and tal["speaker"] == "tal1"
    upx = _json(capsys, samples_dir / "ultrasuite-upx" / "sample.param")
    assert (upx["transcript"], upx["speaker"], upx["fps"]) == ("packing Hague top guy", "UPX_01F_BL2", 121.618)
    assert upx["audio"]["sample_rate"] == 22050
    # Audio covers (7.8483 - 0.5073) s x 121.618 fps = 892 frames.
    assert upx["max_frames_audio_covers"] == 892
    rc, text, _ = _run(capsys, samples_dir / "ultrasuite-upx" / "sample")  # the bare stem works too
    assert rc == 0 and "NumVectors" in text and "packing Hague top guy" in text


def test_utterance_with_synthetic_ult(samples_dir, tmp_path, capsys):
    for suffix in (".param", ".wav", ".txt"):
        shutil.copy(samples_dir / "tal1" / f"088_aud{suffix}", tmp_path / f"088_aud{suffix}")
    write_ult(tmp_path / "088_aud.ult", np.zeros((267, 64, 842), np.uint8))  # the real utterance's frame count
    info = _json(capsys, tmp_path / "088_aud.ult")
    assert info["shape"] == [267, 64, 842] and info["dtype"] == "uint8" and info["frames"] == 267
    assert info["synchronised"]["frames"] == 267 and info["synchronised"]["audio_samples_dropped_start"] == round(0.97092 * 48000)


def test_mri_video_and_dataset(tmp_path, capsys):
    write_mri(tmp_path / "s1" / "asouk.nii.gz", np.random.default_rng(0).random((26, 16, 12), dtype=np.float32), frame_s=0.0385)
    write_audio(tmp_path / "s1" / "asouk.wav", np.zeros(22050, np.float32), 22050)
    params = UltrasoundParams(8, 16, angle=0.05, fps=60.0)
    write_utterance(tmp_path / "spk" / "u1", np.zeros((60, 8, 16), np.uint8), params, np.zeros(16000, np.float32), 16000, "hello there", speaker="spk-A")
    write_video(tmp_path / "spk" / "v1.mp4", np.zeros((10, 8, 8), np.uint8), 50, audio=np.zeros(3200, np.float32), sr=16000)
    write_audio(tmp_path / "spk" / "v1.wav", np.zeros(3200, np.float32), 16000)

    mri = inspect_path(tmp_path / "s1" / "asouk.nii.gz")
    assert mri["shape"] == [26, 16, 12] and mri["fps"] == pytest.approx(1 / 0.0385, abs=1e-3)
    assert mri["audio"]["sample_rate"] == 22050
    video = inspect_path(tmp_path / "spk" / "v1.mp4")
    assert video["frames"] == 10 and video["fps"] == 50 and video["audio_track"].startswith("aac")
    data = _json(capsys, tmp_path)
    assert (data["kind"], data["recordings"], data["subjects"], data["source"]) == ("dataset", 3, 2, "discovered")
    assert data["kinds"] == {"mri": 1, "ultrasound": 2} and data["with_transcript"] == 1
    rc, text, _ = _run(capsys, tmp_path)
    assert rc == 0 and "recordings" in text and "id=s1/asouk" in text and "transcript=hello there" in text


# ---------------------------------------------------------------- refusals through the CLI


def test_refuses_truncated_wav(tmp_path, capsys):
    full = write_audio(tmp_path / "full.wav", np.zeros(16000, np.float32), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:10000])
    rc, out, err = _run(capsys, cut)
    assert rc == 1 and out == ""
    assert f"{cut}: truncated WAV" in err and "Traceback" not in err


def test_refuses_truncated_real_wav(samples_dir, tmp_path, capsys):
    cut = tmp_path / "088_aud.wav"
    cut.write_bytes((samples_dir / "tal1" / "088_aud.wav").read_bytes()[:100000])
    rc, _, err = _run(capsys, cut)
    assert rc == 1 and "088_aud.wav: truncated WAV: header declares 525824 bytes" in err


def test_refuses_non_nifti(tmp_path, capsys):
    fake = tmp_path / "scan.nii.gz"
    fake.write_text("subject 7, session 2\n")
    rc, _, err = _run(capsys, fake)
    assert rc == 1 and f"{fake}: not a readable NIfTI file" in err


def test_refuses_ult_too_short_for_param(tmp_path, capsys):
    params = UltrasoundParams(64, 842, zero_offset=210, angle=0.025, fps=81.512)
    write_utterance(tmp_path / "utt", np.zeros((3, 64, 842), np.uint8), params, np.zeros(16000, np.float32), 16000, "x")
    (tmp_path / "utt.ult").write_bytes(bytes(20000))
    rc, _, err = _run(capsys, tmp_path / "utt.ult")
    assert rc == 1 and f"{tmp_path / 'utt.ult'}: 20000 bytes is shorter than one frame (53888 bytes" in err


def test_refuses_missing_and_unknown(tmp_path, capsys):
    rc, _, err = _run(capsys, tmp_path / "nothing.wav")
    assert rc == 1 and "nothing.wav: file or folder not found" in err
    (tmp_path / "notes.docx").write_bytes(b"x")
    rc, _, err = _run(capsys, tmp_path / "notes.docx")
    assert rc == 1 and "notes.docx: unknown file type .docx" in err


def test_console_script_exit_code(tmp_path):
    fake = tmp_path / "bad.nii.gz"
    fake.write_bytes(b"\x1f\x8b\x08\x00garbage")
    exe = Path(sys.executable).with_name("articulate")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "articulate.cli.main"]
    proc = subprocess.run([*cmd, "inspect", str(fake)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "bad.nii.gz: not a readable NIfTI file" in proc.stderr


def test_prompt_file_named_like_us_txt_is_a_transcript(tmp_path):
    (tmp_path / "campus.txt").write_text("on the campus\n01/01/2020\n")
    info = inspect_path(tmp_path / "campus.txt")
    assert info == {"kind": "transcript", "path": str(tmp_path / "campus.txt"), "transcript": "on the campus", "speaker": tmp_path.name}


# ---------------------------------------------------------------- video with in-container audio, AAA sync, levels


def test_real_ultrax_folder_finds_each_video_with_its_audio(samples_dir, capsys):
    info = _json(capsys, samples_dir / "ultrax-video")
    assert (info["recordings"], info["with_audio"], info["video_audio_sources"]) == (4, 4, {"container": 4})
    durations = {"Ultrax_TD_001": 5.5, "Ultrax_TD_002": 12.8, "Ultrax_TD_003": 4.9, "Ultrax_TD_004": 6.2}  # the README's
    for row in info["first_recordings"]:
        assert row["audio_source"] == "container" and row["audio"] == "(in the video)"
        assert row["audio_s"] == pytest.approx(durations[row["id"]], abs=0.06)
        assert -20 < row["peak_dbfs"] < 0 and row["rms_dbfs"] < row["peak_dbfs"] and "problems" not in row
        assert "probe bottom" in row["fan"] and row["fan"].startswith("320x")
    rc, text, err = _run(capsys, samples_dir / "ultrax-video")
    assert rc == 0 and "audio_source=container" in text and err == ""


def test_real_ultrax_file_and_fan_png(samples_dir, tmp_path, capsys):
    png = tmp_path / "fan.png"
    rc, out, err = _run(capsys, samples_dir / "ultrax-video" / "Ultrax_TD_001.avi", "--json", "--fan-png", png)
    assert rc == 0, err
    info = json.loads(out)
    assert (info["audio_source"], info["audio_track"], info["frames"]) == ("container", "pcm_s16le 22050 Hz", 674)
    assert info["audio"]["sample_rate"] == 22050 and info["audio"]["problems"] == "none"
    assert info["synchronised"]["source"] == "container timestamps" and info["synchronised"]["first_frame_s"] == 0
    assert info["fan"]["apex_side"] == "bottom" and info["fan"]["bbox_xywh"][2] == 320
    from PIL import Image

    assert Image.open(png).size == (320, 240) and info["fan"]["png"] == str(png)
    rc, _, err = _run(capsys, samples_dir / "aaa-satkit" / "File009.wav", "--fan-png", tmp_path / "x.png")
    assert rc == 1 and "--fan-png needs a video file" in err and not (tmp_path / "x.png").exists()


def test_real_aaa_export_sync_and_trimming(samples_dir, capsys):
    info = _json(capsys, samples_dir / "aaa-satkit" / "File009.ult")
    sync = info["synchronised"]
    fps, t0, frames, samples, sr = 122.541, 1.01619, 250, 64512, 22050
    kept = int((samples / sr - t0) * fps)  # whole frames inside the audio
    assert (sync["first_frame_s"], sync["frames"], sync["frames_dropped_end"]) == (t0, kept, frames - kept) == (t0, 233, 17)
    assert sync["audio_samples_dropped_start"] == round(t0 * sr)
    assert sync["image_end_s"] == pytest.approx(t0 + frames / fps, abs=1e-4)
    assert f"ultrasound runs {t0 + frames / fps - samples / sr:.3f} s past the end of the audio: last 17 frame(s) dropped" in sync["trimmed"]
    assert sync["source"].startswith("File009US.txt: TimeInSecsOfFirstFrame=1.01619")
    assert info["textgrid_words"] == ["na 2.113-2.315 s"] and (info["transcript"], info["speaker"]) == ("na", "Pertti")
    rc, text, _ = _run(capsys, samples_dir / "aaa-satkit" / "File009.ult")
    assert rc == 0 and "past the end of the audio" in text
    grid = _json(capsys, samples_dir / "aaa-satkit" / "File156.TextGrid")
    assert (grid["kind"], grid["words_tier"], grid["transcript"]) == ("textgrid", "word", "gap")


def test_near_silent_audio_is_flagged(samples_dir, tmp_path, capsys):
    from articulate.readers.audio import read_audio

    wav, sr = read_audio(samples_dir / "tal1" / "088_aud.wav", sr=16000)
    quiet = write_audio(tmp_path / "quiet.wav", wav * (0.005 / np.abs(wav).max()), sr)
    rc, out, err = _run(capsys, quiet, "--json")
    assert rc == 0
    info = json.loads(out)
    peak = info["peak_dbfs"]  # 0.005 as 16-bit PCM: -46.0 dBFS to within the quantisation
    assert peak == pytest.approx(20 * np.log10(0.005), abs=0.1)
    assert info["problems"][0].startswith(f"near-silent: peak {peak:.1f} dBFS")
    assert f"warning: {quiet}: near-silent: peak {peak:.1f} dBFS is below -40 dBFS" in err
    video = write_video(tmp_path / "spk" / "quiet.mp4", np.zeros((10, 8, 8), np.uint8), 50, audio=np.zeros(3200, np.float32), sr=sr)
    rc, _, err = _run(capsys, tmp_path / "spk")
    assert rc == 0 and f"warning: {video}: near-silent: every sample is zero" in err
    mute = write_video(tmp_path / "mute.mp4", np.zeros((10, 8, 8), np.uint8), 50)
    assert inspect_path(mute)["note"].startswith("not usable as a recording: no audio")


def test_refuses_truncated_video_in_one_line(samples_dir, tmp_path, capsys):
    cut = tmp_path / "Ultrax_TD_002.avi"
    cut.write_bytes((samples_dir / "ultrax-video" / "Ultrax_TD_002.avi").read_bytes()[:1_000_000])
    rc, out, err = _run(capsys, cut)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert err.strip().count("\n") == 0 and f"{cut}: truncated video: the AVI header declares 1554 frames" in err
    rc, _, err = _run(capsys, tmp_path)  # the dataset check decodes the first recordings too
    assert rc == 1 and f"{cut}:" in err
