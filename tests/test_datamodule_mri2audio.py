"""MRI2AudioDataModule: shapes, seeded per-epoch crops, mel targets vs librosa, LOSO folds, pairs.

This file is also a script (``python tests/test_datamodule_mri2audio.py DATA_DIR OUT_DIR``): the DDP
test runs it in a subprocess so Lightning's ``ddp`` launcher can re-execute it for rank 1.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from articulate.errors import InputError
from articulate.readers.audio import read_audio, write_audio
from articulate.readers.mri import write_mri
from articulate.signal.mel import MelConfig, mel_librosa, power_to_unit
from datamodules.mri2audio import Crops, EpochSampler, MRI2AudioDataModule, SubjectSplit, crop_starts, prepare_mri

SR = 22050
# subject -> (utterance, audio length); S6's audio is shorter than a crop.
COHORT = {"S1": ("asouk", 22400), "S2": ("asouk", 23000), "S3": ("asouk", 24100), "S4": ("asouk", 21900),
          "S5": ("ageese", 22800), "S6": ("ageese", 15000)}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six subjects written with the readers' writers: 20 frames of 48 x 40 px (resized by the
    DataModule), voiced-like audio of 15,000-24,100 samples at 22,050 Hz."""
    root = tmp_path_factory.mktemp("mri2audio-cohort")
    for k, (subject, (utt, n)) in enumerate(COHORT.items()):
        rng = np.random.default_rng(k)
        t = np.arange(n) / SR
        f0 = 100 + 20 * k + 40 * t
        phase = 2 * np.pi * np.cumsum(f0) / SR
        wav = 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * sum(np.sin(h * phase) / h for h in range(1, 8))
        wav += 0.01 * rng.standard_normal(n)
        write_audio(root / subject / f"{utt}.wav", wav.astype(np.float32), SR)
        frames = rng.uniform(0, 100, (20, 48, 40)).astype(np.float32)
        frames[:, 5, 5] = 5000.0  # a few very bright voxels (percentile scaling must ignore them)
        write_mri(root / subject / f"{utt}.nii.gz", frames)
    return root


def make_dm(cohort, split: dict | None = None, crops: dict | None = None, **kw) -> MRI2AudioDataModule:
    """3 training crops per recording, 1 validation subject, unless ``split`` / ``crops`` say otherwise."""
    args = dict(data_dir=str(cohort), batch_size=4, num_workers=0, split=SubjectSplit(**{"val_subjects": 1, **(split or {})}),
                crops=Crops(**{"train": 3, **(crops or {})}))
    args.update(kw)
    dm = MRI2AudioDataModule(**args)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def epoch_items(dm: MRI2AudioDataModule, epoch: int) -> list[dict]:
    ds = dm.dataset("train")
    sampler = EpochSampler(ds, seed=dm.seed)
    sampler.set_epoch(epoch)
    return [ds[key] for key in sampler]


def test_batch_shapes_dtypes_ranges(cohort):
    dm = make_dm(cohort)
    batch = next(iter(dm.train_dataloader()))
    assert batch["mri"].shape == batch["mri_pair"].shape == (4, 1, 26, 128, 128)
    assert batch["mel"].shape == batch["mel_pair"].shape == (4, 1, 64, 64)
    assert batch["audio"].shape == (4, 21000)
    for key in ("mri", "mel", "audio", "mri_pair", "mel_pair"):
        assert batch[key].dtype == torch.float32, key
    for key in ("mri", "mel", "mri_pair", "mel_pair"):
        assert batch[key].min() >= 0 and batch[key].max() <= 1, key
    assert batch["mri"].max() == 1 and batch["mel"].max() > 0.5
    for key in ("subject", "utterance", "sample_index", "crop_start", "subject_pair", "utterance_pair"):
        assert batch[key].dtype == torch.int64 and batch[key].shape == (4,), key
    assert batch["same_utterance"].dtype == torch.bool
    val = next(iter(dm.val_dataloader()))
    assert val["mri"].shape[1:] == (1, 26, 128, 128) and val["mel"].shape[1:] == (1, 64, 64)
    assert "mri_pair" not in val  # pairs are a training device (the KL term)
    assert dm.mel_config == MelConfig() and dm.sample_rate == SR
    assert dm.subjects == sorted(COHORT) and dm.utterances == ["ageese", "asouk"]
    assert "6 recordings, 6 subjects" in dm.describe() and "loso fold 0 of 6" in dm.describe()


def test_crops_are_the_recording_audio_and_mel_matches_librosa(cohort):
    dm = make_dm(cohort, pairs=False)
    ds = dm.dataset("train")
    cfg = dm.mel_config
    for key in [(0, 0), (0, 4), (2, len(ds) - 1)]:
        item = ds[key]
        rec = dm.recordings[ds.recordings[key[1] // dm.n_crops]]
        wav, _ = read_audio(cohort / rec.subject / f"{rec.utterance}.wav", sr=SR)
        wav = np.pad(wav, (0, max(0, 21000 - len(wav))))  # S6 is short: zero-padded
        s = int(item["crop_start"])
        np.testing.assert_array_equal(item["audio"].numpy(), wav[s:s + 21000])
        ref = power_to_unit(mel_librosa(item["audio"].numpy(), cfg), cfg)
        # float32 torch STFT vs librosa: ~3e-5 dB, i.e. ~2e-7 on the 140 dB unit scale.
        assert np.abs(item["mel"][0].numpy() - ref).max() < 1e-5


def test_crops_differ_between_epochs_and_are_reproducible(cohort):
    dm = make_dm(cohort)
    e0 = [int(it["crop_start"]) for it in epoch_items(dm, 0)]
    e1 = [int(it["crop_start"]) for it in epoch_items(dm, 1)]
    assert e0 != e1
    again = make_dm(cohort)
    assert [int(it["crop_start"]) for it in epoch_items(again, 0)] == e0
    other = make_dm(cohort, seed=5)
    assert [int(it["crop_start"]) for it in epoch_items(other, 0)] != e0
    # Each recording yields n_crops items per epoch, visited in a shuffled order.
    order = [int(it["sample_index"]) for it in epoch_items(dm, 0)]
    assert sorted(order) == list(range(len(dm.dataset("train")))) and order != sorted(order)


def test_epoch_sampler_shards_across_ranks(cohort):
    ds = make_dm(cohort, crops={"train": 5}).dataset("train")  # 4 training recordings x 5 = 20 items
    shards = []
    for rank in range(3):
        sampler = EpochSampler(ds, seed=0, num_replicas=3, rank=rank)
        sampler.set_epoch(7)
        shards.append(list(sampler))
    assert all(len(s) == 7 for s in shards)  # ceil(20 / 3), padded by wrapping
    keys = [k for s in shards for k in s]
    assert {k[0] for k in keys} == {7}
    assert {k[1] for k in keys} == set(range(20))


def test_short_audio_is_zero_padded_with_one_warning(cohort, caplog):
    with caplog.at_level(logging.WARNING, logger="datamodules.mri2audio"):
        dm = make_dm(cohort, split={"kind": "loso"}, fold=5)  # S6 (short) is the test subject
    assert sum("zero-padded" in r.getMessage() for r in caplog.records) == 1
    rec = next(r for r in dm.recordings if r.subject == "S6")
    assert rec.n_samples == 15000 and len(rec.audio) == 21000 and not rec.audio[15000:].any()
    item = dm.dataset("test")[0]
    assert item["audio"].shape == (21000,) and int(item["crop_start"]) == 0


def test_loso_folds_are_subject_disjoint_and_cover_every_subject(cohort):
    tested = []
    for fold in range(len(COHORT)):
        dm = make_dm(cohort, fold=fold, pairs=False)
        s = dm.split_info
        assert len(s.test_subjects) == 1 and len(s.val_subjects) == 1
        assert not set(s.train_subjects) & set(s.test_subjects)
        assert not set(s.train_subjects) & set(s.val_subjects)
        assert not set(s.val_subjects) & set(s.test_subjects)
        subj = {name: {int(dm.dataset(name)[i]["subject"]) for i in range(len(dm.dataset(name)))}
                for name in ("train", "val", "test")}
        assert {dm.subjects[i] for i in subj["test"]} == set(s.test_subjects)
        assert not subj["train"] & subj["test"]
        tested += s.test_subjects
    assert sorted(tested) == sorted(COHORT)
    with pytest.raises(InputError, match="fold 6 is out of range"):
        make_dm(cohort, fold=6)


def test_kfold_split(cohort):
    tests = [make_dm(cohort, split={"kind": "kfold", "k": 3}, fold=f, pairs=False).split_info.test_subjects for f in range(3)]
    assert sorted(s for t in tests for s in t) == sorted(COHORT) and all(len(t) == 2 for t in tests)


def test_pairs_follow_the_rules(cohort):
    dm = make_dm(cohort, crops={"train": 60}, fold=0, split={"val_subjects": 0})  # train: S2-S6 (S2-S4 asouk, S5-S6 ageese)
    items = epoch_items(dm, 0)
    subj = np.array([int(it["subject"]) for it in items])
    utt = np.array([int(it["utterance"]) for it in items])
    subj_p = np.array([int(it["subject_pair"]) for it in items])
    utt_p = np.array([int(it["utterance_pair"]) for it in items])
    same = np.array([bool(it["same_utterance"]) for it in items])
    assert (subj != subj_p).all()  # always another subject
    assert (same == (utt == utt_p)).all()
    train_ids = {dm.subjects.index(s) for s in dm.split_info.train_subjects}
    assert set(subj_p) <= train_ids  # partners come from the training subjects only
    # Every item has a same-utterance partner available here: about half are same-utterance pairs.
    frac = same.mean()
    assert 0.4 < frac < 0.6, frac  # 300 draws: 0.5 +- 3.5 sd
    # The partner's MRI is the partner recording's MRI.
    it = items[0]
    rec = next(r for r in dm.recordings if dm.subjects.index(r.subject) == int(it["subject_pair"]))
    torch.testing.assert_close(it["mri_pair"][0], rec.mri)


def test_pairs_without_a_same_utterance_partner_are_different(cohort):
    # fold 4 tests S5: S6 is the only ageese speaker left, so S6's partners must be asouk speakers.
    dm = make_dm(cohort, crops={"train": 20}, fold=4, split={"val_subjects": 0})
    s6 = dm.subjects.index("S6")
    items = [it for it in epoch_items(dm, 0) if int(it["subject"]) == s6]
    assert len(items) == 20 and not any(bool(it["same_utterance"]) for it in items)


def test_eval_crops_are_fixed_and_evenly_spaced(cohort):
    assert crop_starts(24000, 21000, 1) == [1500]
    assert crop_starts(24000, 21000, 3) == [0, 1500, 3000]
    dm = make_dm(cohort, crops={"eval": 3}, fold=2)  # S3 tests: 24,100 samples
    starts = [int(dm.dataset("test")[i]["crop_start"]) for i in range(3)]
    assert starts == [0, 1550, 3100] == [int(make_dm(cohort, crops={"eval": 3}, fold=2).dataset("test")[i]["crop_start"]) for i in range(3)]
    info = dm.item_info("test", 2)
    assert info["id"] == "S3/asouk" and info["crop_start"] == 3100 and info["n_samples"] == 24100


def test_prepare_mri_resize_and_robust_scaling():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, (10, 64, 64)).astype(np.float32)
    x[:, 0, 0] = 1e4  # outliers above the 99.5th percentile
    y = prepare_mri(x, 10, 64)
    lo, hi = np.percentile(x, [0.5, 99.5])
    np.testing.assert_allclose(y.numpy(), np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert y.dtype == torch.float32 and y.shape == (10, 64, 64)
    # Time: linear interpolation at frame centres, e.g. a ramp stays a ramp.
    ramp = np.broadcast_to(np.arange(5, dtype=np.float32)[:, None, None], (5, 8, 8)).copy()
    r = prepare_mri(ramp, 9, 8, percentiles=(0.0, 100.0))[:, 0, 0].numpy()
    centres = np.clip((np.arange(9) + 0.5) * 5 / 9 - 0.5, 0, 4)
    np.testing.assert_allclose(r, centres / 4, atol=1e-6)
    # Space: shrinking a fine checkerboard averages it (antialiasing) instead of aliasing.
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    board = np.stack([np.zeros((64, 64), np.float32), checker, np.ones((64, 64), np.float32)])
    small = prepare_mri(board, 3, 16, percentiles=(0.0, 100.0))
    assert abs(float(small[1].mean()) - 0.5) < 0.02 and float(small[1].std()) < 0.05
    assert prepare_mri(np.ones((4, 8, 8), np.float32), 4, 8).abs().max() == 0


def test_bad_inputs_are_clear(cohort, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match="nope: dataset folder not found"):
        MRI2AudioDataModule(data_dir=str(missing)).prepare_data()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError):
        MRI2AudioDataModule(data_dir=str(empty), num_workers=0).setup()
    with pytest.raises(InputError, match="crops.train"):
        MRI2AudioDataModule(crops=Crops(train=0))
    with pytest.raises(InputError, match="split"):
        MRI2AudioDataModule(split=SubjectSplit(kind="random"))  # type: ignore[arg-type]


def test_mel_config_from_dict_and_train_mels(cohort):
    dm = make_dm(cohort, mel={"n_mels": 32}, pairs=False)
    assert dm.mel_config.n_mels == 32 and dm.mel_frames == 64
    assert dm.dataset("train")[0]["mel"].shape == (1, 32, 64)
    batches = list(dm.train_mels(crops_per_recording=2))
    mel = torch.cat([b["mel"] for b in batches])
    assert mel.shape == (2 * len(dm.splits["train"]), 1, 32, 64)
    assert set(torch.cat([b["utterance"] for b in batches]).tolist()) <= {0, 1}


def test_phantom_default(tmp_path):
    dm = MRI2AudioDataModule(phantom={"subjects": 4, "workers": 1}, crops=Crops(train=2), batch_size=2, num_workers=0,
                             split=SubjectSplit(val_subjects=1))
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.recordings) == 4 and "(phantom)" in dm.describe()
    batch = next(iter(dm.train_dataloader()))
    assert batch["mri"].shape == (2, 1, 26, 128, 128) and batch["mel"].shape == (2, 1, 64, 64)


def test_crop_window_reads_the_mri_at_the_crops_time(cohort):
    """``mri_window: crop``: frame j of an item is the recording's sequence read at the time of the j-th of
    26 equal windows of the crop (np.interp per pixel as the reference); ``mri_span`` names the samples."""
    whole, crop = make_dm(cohort, pairs=False), make_dm(cohort, pairs=False, crops={"mri_window": "crop"})
    for split, key in (("train", (0, 5)), ("test", 0)):
        item, plain = crop.dataset(split)[key], whole.dataset(split)[key]
        index = item["sample_index"] // crop.n_crops if split == "train" else 0
        rec = crop.recordings[crop.splits[split][index]]
        s, n = int(item["crop_start"]), rec.n_samples
        assert int(plain["crop_start"]) == s and torch.equal(plain["mri"][0], rec.mri)  # the paper's setting
        assert plain["mri_span"].tolist() == [0.0, float(n)] and item["mri_span"].tolist() == [s, s + 21000.0]
        pos = np.clip((s + (np.arange(26) + 0.5) * 21000 / 26) / n * 26 - 0.5, 0, 25)
        ref = np.stack([np.interp(pos, np.arange(26), rec.mri[:, y, 7].numpy()) for y in range(0, 128, 9)], 1)
        np.testing.assert_allclose(item["mri"][0, :, ::9, 7].numpy(), ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(item["mel"], plain["mel"])  # the audio side does not change
    with pytest.raises(InputError, match="mri_window"):
        make_dm(cohort, crops={"mri_window": "middle"})
    assert "motion_region" not in whole.dataset("test")[0]  # no phantom ground truth beside these files


def test_phantom_motion_regions_in_evaluation_batches_and_ridge_items():
    from articulate.phantom import motion_region

    dm = MRI2AudioDataModule(phantom={"subjects": 4}, crops=Crops(train=2, eval=2, mri_window="crop"), batch_size=2,
                             num_workers=0, split=SubjectSplit(val_subjects=1), size=32)
    dm.setup("fit")
    batch = next(iter(dm.test_dataloader()))
    rec = dm.recordings[dm.splits["test"][0]]
    region = torch.from_numpy(motion_region(rec.source, size=(32, 32), frames=26))
    assert batch["motion_region"].shape == (2, 26, 32, 32)
    for i in range(2):  # windowed in time like the MRI of the same crop
        s = int(batch["crop_start"][i])
        pos = np.clip((s + (np.arange(26) + 0.5) * 21000 / 26) / rec.n_samples * 26 - 0.5, 0, 25)
        ref = np.stack([np.interp(pos, np.arange(26), region[:, 16, x].numpy()) for x in range(32)], 1)
        np.testing.assert_allclose(batch["motion_region"][i, :, 16].numpy(), ref, rtol=1e-5, atol=1e-6)
    assert 0 < float(batch["motion_region"].mean()) < 0.5
    assert "motion_region" not in next(iter(dm.train_dataloader()))
    # probe items: windowed MRI, the crop's mel, each mel frame's place on the given frames
    mri, mel, pos, subject = next(iter(dm.ridge_items(crops_per_recording=2)))
    assert mri.shape == (26, 32, 32) and mel.shape == (64, 64) and subject in dm.subjects
    np.testing.assert_allclose(pos, np.arange(64) * 330 / 21000 * 26 - 0.5)  # frame j at j * hop into the crop
    off = MRI2AudioDataModule(phantom={"subjects": 4}, crops=Crops(train=2), batch_size=2, num_workers=0,
                              split=SubjectSplit(val_subjects=1), size=32, motion_regions=False)
    off.setup("fit")
    assert "motion_region" not in off.dataset("test")[0]


def test_motion_regions_all_reach_training_crops_and_their_partners():
    from articulate.phantom import motion_region

    dm = MRI2AudioDataModule(phantom={"subjects": 4}, crops=Crops(train=2, mri_window="recording"), batch_size=2,
                             num_workers=0, split=SubjectSplit(val_subjects=1), size=32, motion_regions="all")
    dm.setup("fit")
    train = dm.dataset("train")
    item = train[0]
    rec = dm.recordings[dm.splits["train"][0]]
    np.testing.assert_allclose(item["motion_region"].numpy(), motion_region(rec.source, size=(32, 32), frames=26),
                               rtol=1e-6, atol=1e-7)
    assert item["motion_region_pair"].shape == item["mri_pair"].shape[1:]
    assert "motion_region" in next(iter(dm.test_dataloader()))


class _Recorder:
    """A tiny LightningModule factory: one linear layer on the mel, recording what it was fed."""

    @staticmethod
    def make():
        import lightning.pytorch as pl

        class Recorder(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(64, 1)
                self.seen: dict[int, list[int]] = {}
                self.indices: dict[int, list[int]] = {}
                self.val_batches = 0

            def training_step(self, batch, _):
                self.seen.setdefault(self.current_epoch, []).extend(batch["crop_start"].tolist())
                self.indices.setdefault(self.current_epoch, []).extend(batch["sample_index"].tolist())
                return self.layer(batch["mel"].mean(dim=(1, 2))).mean()

            def validation_step(self, batch, _):
                self.val_batches += 1

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.0)

        return Recorder()


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 2])
def test_trainer_sets_the_epoch_of_the_crops(cohort, num_workers):
    import lightning.pytorch as pl

    def run(val_subjects):
        dm = MRI2AudioDataModule(data_dir=str(cohort), crops=Crops(train=2), batch_size=4, num_workers=num_workers,
                                 split=SubjectSplit(val_subjects=val_subjects), pairs=False)
        model = _Recorder.make()
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(model, datamodule=dm)
        return dm, model

    dm, model = run(1)
    assert len(model.seen[0]) == len(model.seen[1]) == 2 * len(dm.splits["train"])
    assert model.seen[0] != model.seen[1]  # Lightning called set_epoch: new crops each epoch
    assert model.val_batches == 2
    ds = dm.dataset("train")
    sampler = EpochSampler(ds, seed=0)
    sampler.set_epoch(1)
    assert model.seen[1] == [int(ds[k]["crop_start"]) for k in sampler]  # exactly the seeded epoch
    _, model = run(0)
    assert model.val_batches == 0  # no validation subjects: validation is skipped


def _ddp_main(data_dir: str, out_dir: str) -> None:
    """Fit 2 epochs on 2 CPU processes; each rank writes the items it was given."""
    import lightning.pytorch as pl

    torch.set_num_threads(1)
    dm = MRI2AudioDataModule(data_dir=data_dir, crops=Crops(train=4), batch_size=2, num_workers=0,
                             split=SubjectSplit(val_subjects=1), pairs=False)
    model = _Recorder.make()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    sampler = trainer.train_dataloader.sampler
    result = {"rank": trainer.global_rank, "world": trainer.world_size, "indices": model.indices,
              "starts": model.seen, "sampler": type(sampler).__name__, "replicas": sampler.num_replicas,
              "n_items": len(dm.dataset("train"))}
    Path(out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


@pytest.mark.ddp
def test_two_process_ddp_shards_the_epoch(cohort, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, __file__, str(cohort), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    n = ranks[0]["n_items"]  # 4 training recordings x 4 crops = 16 items: 8 per rank
    for r in ranks:
        assert r["world"] == 2 and r["sampler"] == "EpochSampler" and r["replicas"] == 2
    for epoch in ("0", "1"):
        a, b = ranks[0]["indices"][epoch], ranks[1]["indices"][epoch]
        assert len(a) == len(b) == n // 2 and not set(a) & set(b) and sorted(a + b) == list(range(n))
    assert ranks[0]["starts"]["0"] != ranks[0]["starts"]["1"]


if __name__ == "__main__":
    _ddp_main(sys.argv[1], sys.argv[2])


def test_speaker_dependent_split_of_one_subject(tmp_path):
    """One subject, five recordings: train / validation / test by recording (pairs need two subjects: off)."""
    rng = np.random.default_rng(0)
    for u in range(5):
        write_audio(tmp_path / "s1" / f"utt{u}.wav", (0.1 * rng.standard_normal(22000)).astype(np.float32), SR)
        write_mri(tmp_path / "s1" / f"utt{u}.nii.gz", rng.uniform(0, 100, (20, 32, 32)).astype(np.float32))
    with pytest.raises(InputError, match="split: speaker_dependent"):
        make_dm(tmp_path, pairs=False)  # the default leave-one-subject-out split names the option
    dm = make_dm(tmp_path, split={"kind": "speaker_dependent", "val_fraction": 0.2, "test_fraction": 0.2}, pairs=False, size=32)
    s = dm.split_info
    assert (len(s.train), len(s.val), len(s.test)) == (3, 1, 1)
    assert not set(s.train) & set(s.test) and s.test_subjects == s.train_subjects == ["s1"]
    assert "speaker-dependent" in dm.describe() and dm.num_folds == 1
    assert next(iter(dm.test_dataloader()))["mri"].shape[-1] == 32


def test_pitch_targets_follow_the_recordings_f0_at_the_crops_mel_frames(cohort):
    """With ``pitch=True`` each item holds the F0 of its own crop: the cohort's glides 100 + 20 k + 40 t Hz, read at
    the crop's mel frames (frame i at sample start + i * hop), to within 0.3 semitones where voiced."""
    dm = make_dm(cohort, pitch=True)
    hop = dm.mel_config.hop_length
    for split in ("train", "test"):
        ds = dm.dataset(split)
        item = ds[0] if split == "test" else ds[(0, 1)]
        rec = dm.recordings[dm.splits[split][0]]
        k = list(COHORT).index(rec.subject)
        t = (item["crop_start"] + np.arange(item["mel"].shape[-1]) * hop) / SR
        truth = 12 * np.log2((100 + 20 * k + 40 * t) / 100)
        assert item["pitch"].shape == item["voiced"].shape == (item["mel"].shape[-1],)
        v = item["voiced"].numpy() & (np.arange(len(t)) > 1) & (np.arange(len(t)) < len(t) - 2)
        assert v.mean() > 0.7
        assert np.abs(item["pitch"].numpy()[v] - truth[v]).max() < 0.3
        if split == "train":
            assert item["pitch_pair"].shape == item["voiced_pair"].shape == item["pitch"].shape
    assert "pitch" not in make_dm(cohort).dataset("test")[0]  # off by default: no pYIN at setup
