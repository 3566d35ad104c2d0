"""`articulate score`: folders paired by relative name, every file kind, JSON keys, clear refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from articulate.cli.main import main as articulate


def run(capsys, *argv) -> tuple[int, str, str]:
    code = articulate(["score", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def corr2_numpy(a, b):
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum())


@pytest.fixture
def spectrogram_folders(tmp_path):
    rng = np.random.default_rng(0)
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    pairs = []
    for name in ("s1/a", "s1/b", "s2/a"):
        r = rng.random((64, 64)).astype(np.float32)
        p = np.clip(0.7 * r + 0.3 * rng.random((64, 64)), 0, 1).astype(np.float32)
        for root, arr in ((ref, r), (pred, p)):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            np.save(root / f"{name}.npy", arr)
        pairs.append((r.astype(np.float64), p.astype(np.float64)))
    np.save(pred / "unrelated.npy", np.zeros((2, 2)))  # ignored, with a note on stderr
    return ref, pred, pairs


def test_score_npy_folders_json_matches_closed_forms(capsys, spectrogram_folders):
    ref, pred, pairs = spectrogram_folders
    code, out, err = run(capsys, "--ref", str(ref), "--pred", str(pred), "--metrics", "corr2d,rmse,psnr", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert list(res) == ["corr2d", "rmse", "psnr"]
    assert res["corr2d"] == pytest.approx(np.mean([corr2_numpy(r, p) for r, p in pairs]), abs=1e-9)
    mses = [np.mean((255 * r - 255 * p) ** 2) for r, p in pairs]
    assert res["rmse"] == pytest.approx(np.mean(np.sqrt(mses)), rel=1e-6)
    assert res["psnr"] == pytest.approx(np.mean(10 * np.log10(255**2 / np.array(mses))), rel=1e-6)
    assert "1 file(s)" in err and "ignored" in err
    # the text table shows the same numbers
    code, out, _ = run(capsys, "--ref", str(ref), "--pred", str(pred), "--metrics", "corr2d")
    assert code == 0 and "3 pair(s) scored" in out and f"{res['corr2d']:.4f}" in out


def test_score_wavs_at_any_rate_equal_direct_pesq_at_16k(capsys, tmp_path):
    import pesq as pesq_pkg
    from test_callbacks import speech_like

    from articulate.readers.audio import read_audio
    from articulate.signal.resample import resample

    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    rng = np.random.default_rng(0)
    for i, sr in enumerate((22050, 48000)):
        clean = speech_like(1.5, i, sr)
        sf.write(ref / f"u{i}.wav", clean, sr, subtype="FLOAT")
        sf.write(pred / f"u{i}.wav", clean + 0.02 * rng.standard_normal(len(clean)).astype(np.float32), sr, subtype="FLOAT")
    expect = []
    for i in range(2):
        r, sr = read_audio(ref / f"u{i}.wav")
        d, _ = read_audio(pred / f"u{i}.wav")
        r, d = resample(r, sr, 16000), resample(d, sr, 16000)
        expect.append(pesq_pkg.pesq(16000, r, d, "nb"))
    code, out, err = run(capsys, "--ref", str(ref), "--pred", str(pred), "--metrics", "pesq", "--pesq-mode", "nb", "--json")
    assert code == 0, err
    assert json.loads(out) == {"pesq": pytest.approx(float(np.mean(expect)), abs=1e-6)}


def test_score_videos_against_npy_frames_and_random_init_label(capsys, tmp_path):
    from articulate.readers.video import read_video, write_video

    rng = np.random.default_rng(2)
    frames = (rng.random((6, 32, 32)) * 255).astype(np.uint8)
    write_video(tmp_path / "real.mp4", frames, fps=30)
    decoded, _ = read_video(tmp_path / "real.mp4")
    fake = np.clip(decoded[:5].astype(np.float64) / 255 + 0.05, 0, 1)  # float [0, 1] frames, one fewer
    np.save(tmp_path / "fake.npy", fake)
    code, out, err = run(capsys, "--ref", str(tmp_path / "real.mp4"), "--pred", str(tmp_path / "fake.npy"),
                         "--metrics", "rmse,lpips", "--random-init", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert set(res) == {"rmse", "lpips_NOT_COMPARABLE"}  # random features are labelled in the key
    expect = np.mean(np.sqrt(((decoded[:5].astype(np.float64) - fake * 255) ** 2).mean(axis=(1, 2))))
    assert res["rmse"] == pytest.approx(expect, rel=1e-6)


@pytest.mark.slow
def test_score_fid_fvd_random_init(capsys, tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "r").mkdir(), (tmp_path / "p").mkdir()
    for i in range(2):
        v = rng.random((4, 24, 24))
        np.save(tmp_path / "r" / f"{i}.npy", v)
        np.save(tmp_path / "p" / f"{i}.npy", np.clip(v + 0.1 * rng.standard_normal(v.shape), 0, 1))
    code, out, err = run(capsys, "--ref", str(tmp_path / "r"), "--pred", str(tmp_path / "p"), "--metrics", "fid,fvd",
                         "--random-init", "--fvd-clip-frames", "4", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert set(res) == {"fid_NOT_COMPARABLE", "fvd_NOT_COMPARABLE"}
    assert res["fid_NOT_COMPARABLE"] > 0 and res["fvd_NOT_COMPARABLE"] > 0


def test_score_refusals_name_the_file(capsys, spectrogram_folders, tmp_path):
    ref, pred, _ = spectrogram_folders
    (pred / "s2" / "a.npy").unlink()
    code, _, err = run(capsys, "--ref", str(ref), "--pred", str(pred), "--metrics", "corr2d")
    assert code == 1 and "s2/a" in err and "no prediction" in err
    np.save(pred / "s2" / "a.npy", np.zeros((32, 64), np.float32))
    code, _, err = run(capsys, "--ref", str(ref), "--pred", str(pred), "--metrics", "corr2d")
    assert code == 1 and "a.npy" in err and "differs from the reference" in err
    code, _, err = run(capsys, "--ref", str(ref), "--pred", str(pred), "--metrics", "pesq")
    assert code == 1 and "pesq needs audio files" in err
    code, _, err = run(capsys, "--ref", str(ref / "s1" / "a.npy"), "--pred", str(pred), "--metrics", "corr2d")
    assert code == 1 and "both be files or both be folders" in err
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    code, _, err = run(capsys, "--ref", str(tmp_path / "bad.npy"), "--pred", str(tmp_path / "bad.npy"), "--metrics", "rmse")
    assert code == 1 and "bad.npy" in err and "not a readable .npy" in err
    with pytest.raises(SystemExit) as exc:
        articulate(["score", "--ref", str(ref), "--pred", str(pred), "--metrics", "corr2d,ssim"])
    assert exc.value.code == 2 and "ssim" in capsys.readouterr().err
