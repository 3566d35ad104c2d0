"""`articulate synthesize-uti` end to end on a tiny checkpoint (good and bad input) and `articulate transcribe`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import fit_in_process, make_cohort
from helpers import wav2uti_tiny_override as tiny_override
from test_wav2uti_fit import _stack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wav2uti-cli")
    cohort = make_cohort(tmp / "cohort", speakers=3, utterances=2, seconds=0.5)
    fit_in_process(_stack(None) + [tiny_override(cohort, None, tmp, tmp / "ckpt")],
                   ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"])
    return tmp / "ckpt" / "last.ckpt", cohort


def _run(*args: str) -> int:
    from articulate.cli.main import main

    return main(["synthesize-uti", *args, "--steps", "2"])


def _wav(path: Path, seconds: float, sr: int, channels: int = 1, silent: bool = False) -> Path:
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    x = np.zeros(n) if silent else 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, sr)
    return path


@pytest.mark.slow
def test_synthesize_any_rate_and_channels(trained, tmp_path):
    from articulate.readers.video import read_video

    ckpt, _ = trained
    wav = _wav(tmp_path / "in.wav", 1.05, 48000, channels=2)
    out = tmp_path / "out" / "tongue.mp4"
    assert _run("--ckpt", str(ckpt), "--audio", str(wav), "--out", str(out), "--text", "word one") == 0
    frames = np.load(out.with_suffix(".npy"))
    assert frames.shape == (63, 16, 16) and frames.dtype == np.float32  # round(1.05 s x 60 fps)
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    video, fps = read_video(out)
    assert video.shape[0] == 63 and abs(fps - 60.0) < 1e-6
    v = video.astype(np.float32) / 255  # H.264 (crf 18) of the same frames; untrained noise is its worst case
    assert np.abs(v - frames).mean() < 0.05 and np.corrcoef(v.ravel(), frames.ravel())[0, 1] > 0.9


def test_synthesize_start_level_is_the_samplers_truncated_schedule(trained, tmp_path):
    """--start L gives the frames of the checkpoint's sampler started at L (HeunSampler.sigma_start), not the
    full schedule's."""
    from articulate.cli.synthesize_uti import load_speech, load_wav2uti

    ckpt, _ = trained
    wav = _wav(tmp_path / "in.wav", 0.2, 16000)
    out, full = tmp_path / "start.mp4", tmp_path / "full.mp4"
    assert _run("--ckpt", str(ckpt), "--audio", str(wav), "--out", str(out), "--start", "0.5") == 0
    assert _run("--ckpt", str(ckpt), "--audio", str(wav), "--out", str(full)) == 0
    model = load_wav2uti(ckpt)
    speech = load_speech(wav, model.sample_rate)[0]
    n = int(round(0.2 * model.fps))
    want = model.from_audio(speech, max(n, model.clip_frames), "", seed=0,
                            sampler=model.sampler.replace(num_steps=2, sigma_start=0.5))
    want = ((want[0, 0, :n].clamp(-1, 1) + 1) / 2).numpy()
    got = np.load(out.with_suffix(".npy"))
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.abs(got - np.load(full.with_suffix(".npy"))).max() > 1e-3


@pytest.mark.slow
def test_synthesize_short_audio_padded_then_cut(trained, tmp_path):
    ckpt, _ = trained
    wav = _wav(tmp_path / "short.wav", 0.05, 22050)  # 3 frames < one 4-frame clip
    out = tmp_path / "short.mp4"
    assert _run("--ckpt", str(ckpt), "--audio", str(wav), "--out", str(out)) == 0
    assert np.load(out.with_suffix(".npy")).shape[0] == 3


@pytest.mark.slow
@pytest.mark.parametrize("case", ["silent", "empty", "corrupt", "too_short", "missing"])
def test_synthesize_bad_input_leaves_no_output(trained, tmp_path, case, capsys):
    ckpt, _ = trained
    path = tmp_path / f"{case}.wav"
    if case == "silent":
        _wav(path, 1.0, 16000, silent=True)
    elif case == "empty":
        sf.write(path, np.zeros(0), 16000)
    elif case == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    elif case == "too_short":
        _wav(path, 0.005, 16000)  # 5 ms: less than one 60-fps frame
    out = tmp_path / "o" / "x.mp4"
    assert _run("--ckpt", str(ckpt), "--audio", str(path), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "error" in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.slow
def test_synthesize_refuses_non_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "model.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    wav = _wav(tmp_path / "a.wav", 0.5, 16000)
    assert _run("--ckpt", str(bogus), "--audio", str(wav), "--out", str(tmp_path / "y.mp4")) == 1
    assert "checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_synthesize_real_samples(trained, samples_dir, tmp_path):
    ckpt, _ = trained
    for wav in (samples_dir / "tal1" / "088_aud.wav", samples_dir / "ultrasuite-upx" / "sample.wav"):
        out = tmp_path / (wav.stem + ".mp4")
        assert _run("--ckpt", str(ckpt), "--audio", str(wav), "--out", str(out)) == 0
        info = sf.info(str(wav))
        assert np.load(out.with_suffix(".npy")).shape[0] == round(info.frames / info.samplerate * 60)


def _tiny_whisper(path: Path) -> Path:
    import json

    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    # GPT-2 byte-level alphabet (no merges) + Whisper's special tokens: a valid, tiny tokenizer.
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
                "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    for s in specials:
        vocab[s] = len(vocab)
    path.mkdir(parents=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = WhisperTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), additional_special_tokens=specials[1:])
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok).save_pretrained(path)
    ids = dict(decoder_start_token_id=vocab["<|startoftranscript|>"], eos_token_id=vocab["<|endoftext|>"],
               pad_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|endoftext|>"])
    cfg = WhisperConfig(vocab_size=len(vocab), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        max_source_positions=1500, max_target_positions=24, **ids)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        **ids, no_timestamps_token_id=vocab["<|notimestamps|>"], lang_to_id={"<|en|>": vocab["<|en|>"]},
        task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]}, is_multilingual=True,
        max_length=24, suppress_tokens=[], begin_suppress_tokens=[])
    model.save_pretrained(path)
    return path


@pytest.mark.slow
def test_transcribe_caches_beside_data_and_feeds_datamodule(tmp_path, capsys):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from articulate.cli.main import main
    from articulate.cli.transcribe import WhisperTranscriber
    from articulate.readers.audio import read_audio
    from articulate.transforms.clips import ClipGeometry
    from datamodules.wav2uti import SpeakerSplit, Wav2UTIDataModule

    whisper = _tiny_whisper(tmp_path / "whisper")
    data = make_cohort(tmp_path / "data", speakers=3, utterances=1, seconds=0.4)
    assert main(["transcribe", str(data), "--model", str(whisper), "--language", "en"]) == 0
    outs = sorted(data.rglob("*.whisper.txt"))
    assert len(outs) == 3
    # the text is what the same model produces through transformers directly
    proc, model = WhisperProcessor.from_pretrained(whisper), WhisperForConditionalGeneration.from_pretrained(whisper)
    wav, _ = read_audio(data / "spk0" / "utt0.wav", sr=16000)
    ids = model.generate(proc(wav, sampling_rate=16000, return_tensors="pt").input_features, language="en",
                         task="transcribe", max_new_tokens=19)
    expect = proc.batch_decode(ids, skip_special_tokens=True)[0].strip()
    assert (data / "spk0" / "utt0.whisper.txt").read_text(encoding="utf-8").strip() == expect
    assert WhisperTranscriber(str(whisper), language="en")(wav) == expect
    before = {p: p.stat().st_mtime_ns for p in outs}
    assert main(["transcribe", str(data), "--model", str(whisper)]) == 0  # cached: nothing redone
    assert {p: p.stat().st_mtime_ns for p in outs} == before
    (data / "spk0" / "utt0.whisper.txt").write_text("hand corrected\n", encoding="utf-8")
    dm = Wav2UTIDataModule(data_dir=str(data), clips=ClipGeometry(resolution=16, frames=4),
                           split=SpeakerSplit(test_subjects=["spk1"], val_subjects=["spk2"]), transcript="whisper")
    dm.setup("fit")
    assert [u.text for u in dm.utterances if u.speaker == "spk0"] == ["hand corrected"]
    # a missing model is a clear one-line error, not a traceback
    assert main(["transcribe", str(data), "--model", str(tmp_path / "nope"), "--overwrite"]) == 1
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_synthesize_cascade_base_then_super_resolution(trained, tmp_path, capsys):
    ckpt, cohort = trained
    fit_in_process(_stack("res112.yaml") + [tiny_override(cohort, "res112.yaml", tmp_path, tmp_path / "sr")],
                   ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"])
    sr = tmp_path / "sr" / "last.ckpt"
    wav = _wav(tmp_path / "a.wav", 0.3, 16000)
    out = tmp_path / "cascade.mp4"
    assert _run("--ckpt", str(ckpt), "--sr-ckpt", str(sr), "--audio", str(wav), "--out", str(out)) == 0
    assert np.load(out.with_suffix(".npy")).shape == (18, 28, 28)  # the SR stage's size, round(0.3 x 60) frames
    # the stages swapped is refused with a clear message
    assert _run("--ckpt", str(sr), "--audio", str(wav), "--out", str(tmp_path / "bad.mp4")) == 1
    assert "super-resolution" in capsys.readouterr().err and not (tmp_path / "bad.mp4").exists()


def test_command_line_model_options_win_over_the_checkpoints_hyperparameters(trained, tmp_path, monkeypatch):
    """LightningCLI puts a checkpoint's hyperparameters over the config; an option the user types (a sampling
    setting to try on a trained model) must still take effect, the rest coming from the checkpoint."""
    from articulate.training.lightning_cli import ArticulateCLI

    monkeypatch.setattr(ArticulateCLI, "_run_subcommand", lambda self, sub: None)  # build, do not test
    ckpt, cohort = trained
    over = tiny_override(cohort, None, tmp_path)
    base = ["test", *[a for c in _stack(None) + [over] for a in ("--config", str(c))], "--ckpt_path", str(ckpt)]
    cli = ArticulateCLI(args=base + ["--model.init_args.guidance.scale=2.5",
                                     "--model.init_args.sampler.init_args.num_steps=3"])
    assert cli.model.guidance_scale == 2.5 and cli.model.sampler.num_steps == 3
    plain = ArticulateCLI(args=base)
    assert plain.model.guidance_scale == 1.0 and plain.model.sampler.num_steps == 2  # the checkpoint's
