"""Wav2UTIDataModule: clip shapes, exact audio/video alignment, speaker-disjoint splits, feature cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_cohort

from articulate.errors import InputError


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("wav2uti-cohort"))


def _dm(cohort, clips=None, split=None, **kw):
    from articulate.transforms.clips import ClipGeometry
    from datamodules.wav2uti import SpeakerSplit, Wav2UTIDataModule

    args = dict(data_dir=str(cohort), clips=ClipGeometry(**{"resolution": 32, "frames": 16, **(clips or {})}),
                split=SpeakerSplit(**{"test_subjects": 1, "val_subjects": 1, **(split or {})}), batch_size=3)
    args.update(kw)
    dm = Wav2UTIDataModule(**args)
    dm.setup("fit")
    return dm


def test_clip_shapes_alignment_and_scale(cohort):
    dm = _dm(cohort)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (3, 1, 16, 32, 32)
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0
    # audio span lasts clip_frames / fps to within one sample
    assert abs(batch["audio"].shape[1] - 16 / 60 * 16000) <= 1
    assert len(batch["text"]) == 3 and batch["text"][0].startswith("word ")
    # Alignment: the clip's audio must be exactly the samples of its frames in the trimmed utterance.
    # Independent reference: reread the .wav and apply the 0.1 s ultrasound offset by hand.
    from articulate.readers.audio import read_audio

    for i in range(3):
        utt = dm.utterances[int(batch["utterance"][i])]
        s = int(batch["start"][i])
        wav, _ = read_audio(utt.source.with_suffix(".wav"), sr=16000)
        a0 = int(round(0.1 * 16000)) + int(round(s * 16000 / 60))
        np.testing.assert_allclose(batch["audio"][i].numpy(), wav[a0 : a0 + batch["audio"].shape[1]], atol=1e-6)
    assert dm.data_std is not None and 0.05 < dm.data_std < 1.0


def test_speaker_disjoint_splits(cohort):
    dm = _dm(cohort)
    sp = dm.speakers
    assert len(sp["test"]) == 1 and len(sp["val"]) == 1 and len(sp["train"]) == 3
    assert not (set(sp["train"]) & set(sp["test"])) and not (set(sp["train"]) & set(sp["val"]))
    assert not (set(sp["val"]) & set(sp["test"]))
    for split, speakers in sp.items():
        assert {dm.utterances[i].speaker for i in dm.splits[split]} <= set(speakers)
    # Validation windows tile the utterance and include its last frames.
    val = dm.dataset("val")
    starts = sorted(s for u, s in val.windows if u == dm.splits["val"][0])
    assert starts[0] == 0 and starts[-1] == dm.utterances[dm.splits["val"][0]].num_frames - 16
    test_batch = next(iter(dm.test_dataloader()))
    assert set(test_batch["speaker"]) <= set(sp["test"])
    with pytest.raises(InputError, match="not in the dataset"):
        _dm(cohort, split={"test_subjects": ["nobody"]})


def test_fps_resampling_keeps_duration(cohort):
    dm = _dm(cohort, clips={"fps": 30.0, "frames": 8})
    utt = dm.utterances[0]
    assert utt.num_frames == 36  # 72 frames at 60 fps -> 1.2 s at 30 fps
    assert abs(utt.audio.shape[0] - 1.2 * 16000) <= 1
    from datamodules.wav2uti import resample_frames

    ramp = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    out = resample_frames(ramp, 10.0, 5.0)  # output frame i centre (i+.5)/5 s = input position 2i + 0.5
    np.testing.assert_allclose(out[:, 0, 0], 2 * np.arange(5) + 0.5)


def test_feature_cache_hit_miss_by_content(cohort, tmp_path):
    from articulate.features import FeatureCache, array_content_key
    from articulate.networks.wav2uti.encoders import LogMelEncoder

    enc = LogMelEncoder(n_mels=16)
    calls = []

    def fn(audio, n):
        calls.append(n)
        return enc(torch.from_numpy(audio)[None], fps=60.0, n_frames=n)[0].numpy()

    dm = _dm(cohort, feature_cache_dir=str(tmp_path / "feat"))
    first = dm.attach_features(fn, enc.cache_key())
    assert first == {"hits": 0, "misses": len(dm.utterances)} and len(calls) == len(dm.utterances)
    dm2 = _dm(cohort, feature_cache_dir=str(tmp_path / "feat"))
    second = dm2.attach_features(fn, enc.cache_key())
    assert second == {"hits": len(dm.utterances), "misses": 0} and len(calls) == len(dm.utterances)
    # cached features are the encoder's, frame-aligned with the video, stored as float16
    u = dm2.utterances[0]
    ref = fn(u.audio, u.num_frames)
    assert u.features["audio"].shape == (u.num_frames, 16)
    np.testing.assert_allclose(np.asarray(u.features["audio"], np.float32), ref, atol=2e-3)
    batch = next(iter(dm2.train_dataloader()))
    assert batch["audio_feats"].shape == (3, 16, 16)
    # another encoder configuration -> another folder; changed content -> another key
    assert FeatureCache(tmp_path / "feat").folder(LogMelEncoder(n_mels=8).cache_key()) != FeatureCache(tmp_path / "feat").folder(enc.cache_key())
    changed = u.audio.copy()
    changed[100] += 0.01
    assert array_content_key(changed, 16000, u.num_frames, 60.0) != array_content_key(u.audio, 16000, u.num_frames, 60.0)


def test_text_features_are_padded_with_mask(cohort, tmp_path):
    dm = _dm(cohort, feature_cache_dir=str(tmp_path / "feat"))
    dm.attach_features(text_fn=lambda t: np.ones((len(t.split()), 4), np.float32), text_key="words:v1")
    batch = next(iter(dm.val_dataloader()))
    lengths = [len(t.split()) for t in batch["text"]]
    assert batch["text_feats"].shape[1] == max(lengths)
    assert batch["text_mask"].sum(1).tolist() == lengths


def test_speaker_dependent_split_of_one_speaker(tmp_path):
    """One long recording: contiguous train / val / test blocks, every clip inside one block."""
    from articulate.transforms.clips import ClipGeometry
    from datamodules.wav2uti import SpeakerSplit, Wav2UTIDataModule

    root = make_cohort(tmp_path / "one", speakers=1, utterances=1, seconds=3.0)
    dm = Wav2UTIDataModule(data_dir=str(root), clips=ClipGeometry(resolution=16, frames=8),
                           split=SpeakerSplit(kind="speaker_dependent", val_fraction=0.2, test_fraction=0.2), batch_size=2)
    dm.setup("fit")
    assert "speaker-dependent" in dm.split_name and dm.has_validation
    spans = {}
    for part in ("train", "val", "test"):
        (i,) = dm.splits[part]
        utt = dm.utterances[i]
        lo, hi = (int(v) for v in utt.id.rsplit("[", 1)[1].rstrip("]").split(":"))
        spans[part] = (lo, hi)
        assert utt.speaker == "spk0" and utt.num_frames == hi - lo
        # the block's audio is the recording's audio over the same frames (exact alignment kept)
        assert abs(utt.audio.shape[0] - round((hi - lo) * dm.sample_rate / dm.fps)) <= 1
        assert all(s + dm.clip_frames <= utt.num_frames for _, s in dm.dataset(part).windows)
    assert spans["train"][1] == spans["val"][0] and spans["val"][1] == spans["test"][0]  # contiguous, disjoint


def test_speaker_dependent_split_by_utterance(tmp_path):
    from articulate.transforms.clips import ClipGeometry
    from datamodules.wav2uti import SpeakerSplit, Wav2UTIDataModule

    root = make_cohort(tmp_path / "few", speakers=2, utterances=5, seconds=0.5)
    dm = Wav2UTIDataModule(data_dir=str(root), clips=ClipGeometry(resolution=16, frames=4),
                           split=SpeakerSplit(kind="speaker_dependent"), batch_size=2)
    dm.setup("fit")
    ids = {p: {dm.utterances[i].id for i in dm.splits[p]} for p in ("train", "val", "test")}
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["val"]) and not (ids["val"] & ids["test"])
    assert dm.speakers["test"] == dm.speakers["train"] == ["spk0", "spk1"]  # every speaker in every part


def test_condition_context_carries_the_speech_around_each_clip(cohort, tmp_path):
    """With c frames of context a clip's audio is frames [s - c, s + T + c) of the utterance (silence before its
    start), and its cached features are the encoder's on that padded utterance, frame for frame."""
    from articulate.networks.wav2uti.encoders import LogMelEncoder
    from articulate.readers.audio import read_audio

    c, r = 3, 16000 / 60
    dm = _dm(cohort, clips={"context": c}, feature_cache_dir=str(tmp_path / "feat"))
    enc = LogMelEncoder(n_mels=16)
    dm.attach_features(lambda a, n: enc(torch.from_numpy(a)[None], fps=60.0, n_frames=n)[0].numpy(), enc.cache_key())
    ds = dm.dataset("val")
    first = next(i for i, (_, s) in enumerate(ds.windows) if s == 0)
    later = next(i for i, (_, s) in enumerate(ds.windows) if s >= c)
    for i in (first, later):
        item = ds[i]
        utt, s = dm.utterances[ds.windows[i][0]], ds.windows[i][1]
        assert item["audio_feats"].shape == (16 + 2 * c, 16)
        assert abs(item["audio"].shape[0] - (16 + 2 * c) * r) <= 1
        wav, _ = read_audio(utt.source.with_suffix(".wav"), sr=16000)
        wav = np.concatenate([np.zeros(int(round(c * r)) + 10**5, np.float32), wav[int(round(0.1 * 16000)):]])
        a0 = 10**5 + int(round(s * r))  # the padded utterance, from frame s - c
        np.testing.assert_allclose(item["audio"].numpy(), wav[a0:a0 + item["audio"].shape[0]], atol=1e-6)
        # the cached features: the encoder on the utterance padded with c frames of silence, frames s .. s+T+2c
        padded = np.concatenate([np.zeros(int(round(c * r)), np.float32), utt.audio, np.zeros(int(round(c * r)), np.float32)])
        ref = enc(torch.from_numpy(padded)[None], fps=60.0, n_frames=utt.num_frames + 2 * c)[0].numpy()
        np.testing.assert_allclose(np.asarray(item["audio_feats"], np.float32), ref[s:s + 16 + 2 * c], atol=2e-3)
    assert float(ds[first]["audio"][: int(c * r) - 1].abs().max()) == 0.0  # before the utterance: silence
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio_feats"].shape == (3, 16 + 2 * c, 16) and batch["video"].shape[2] == 16
