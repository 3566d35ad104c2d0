"""Bad dataset folders and manifests through `articulate inspect` and `articulate fit` (the DataModules)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from badinput_helpers import CONFIGS, assert_ok, assert_refused, listing, run, sequence, tone, write_wav

from articulate.readers.mri import write_mri

HEADER = "id,subject,utterance,kind,image,audio,param,text,transcript"
GOOD = ["r1,s1,asouk,mri,s1/a.nii.gz,s1/a.wav,,,", "r2,s2,asouk,mri,s2/a.nii.gz,s2/a.wav,,,"]


def dataset(tmp, rows=GOOD, header=HEADER):
    """Two subjects' MRI + WAV files and a manifest.csv with ``rows``."""
    for i, subject in enumerate(("s1", "s2")):
        (tmp / subject).mkdir(parents=True, exist_ok=True)
        write_mri(tmp / subject / "a.nii.gz", sequence(seed=i))
        write_wav(tmp / subject / "a.wav", tone(0.3, 22050), 22050)
    (tmp / "manifest.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return tmp


CASES = {
    "missing columns": (dict(rows=["r1,s1,s1/a.nii.gz"], header="id,subject,image"),
                        "manifest lacks column(s) utterance, kind, audio"),
    "row with a missing file": (dict(rows=[GOOD[0], "r2,s2,asouk,mri,s2/gone.nii.gz,s2/a.wav,,,"]),
                                "row 3 (id 'r2'): image file"),
    "row with an empty subject": (dict(rows=[GOOD[0], "r2,,asouk,mri,s2/a.nii.gz,s2/a.wav,,,"]),
                                  "row 3 (id 'r2'): empty subject"),
    "row with an empty id": (dict(rows=[",s1,asouk,mri,s1/a.nii.gz,s1/a.wav,,,"]), "row 2: empty id"),
    "unknown kind": (dict(rows=[GOOD[0], "r2,s2,asouk,eeg,s2/a.nii.gz,s2/a.wav,,,"]),
                     "row 3 (id 'r2'): kind 'eeg' is not one of mri, ultrasound"),
    "duplicate ids": (dict(rows=[GOOD[0], "r1,s2,asouk,mri,s2/a.nii.gz,s2/a.wav,,,"]), "row 3 (id 'r1'): duplicate id"),
    "header only": (dict(rows=[]), "manifest lists no recordings"),
    "ult row without param": (dict(rows=[GOOD[0], "r2,s2,x,ultrasound,s2/a.wav,s2/a.wav,,,"]), None),
}


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1] is not None])
def test_inspect_refuses_bad_manifest(case, tmp_path, capfd):
    kwargs, problem = CASES[case]
    root = dataset(tmp_path, **kwargs)
    assert_refused(run(capfd, "inspect", root), "inspect", root / "manifest.csv", problem)


def test_manifest_ult_row_needs_its_param(tmp_path, capfd):
    root = dataset(tmp_path, rows=[GOOD[0]])
    (root / "s2" / "u.ult").write_bytes(bytes(128))
    (root / "manifest.csv").write_text(f"{HEADER}\n{GOOD[0]}\nr2,s2,x,ultrasound,s2/u.ult,s2/a.wav,,,\n")
    assert_refused(run(capfd, "inspect", root), "inspect", root / "manifest.csv", "row 3 (id 'r2'): a .ult image needs its param file")


def test_manifest_that_is_not_text(tmp_path, capfd):
    root = dataset(tmp_path)
    (root / "manifest.csv").write_bytes(b"\xff\xfe\x00\x81" * 50)
    assert_refused(run(capfd, "inspect", root), "inspect", root / "manifest.csv", "not UTF-8 text")


def test_folder_without_recordings(tmp_path, capfd):
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "notes.txt").write_text("nothing here")
    np.save(tmp_path / "s1" / "features.npy", np.zeros((3, 4, 4)))  # a bare array without audio is no recording
    assert_refused(run(capfd, "inspect", tmp_path), "inspect", tmp_path, "no recordings found")


def test_manifest_with_extra_columns_and_inline_transcripts(tmp_path, capfd):
    rows = ["r1,s1,asouk,mri,s1/a.nii.gz,s1/a.wav,,a soup,,left", "r2,s2,asouk,mri,s2/a.nii.gz,s2/a.wav,,,,right"]
    root = dataset(tmp_path, rows=rows, header=HEADER + ",side")
    res = run(capfd, "inspect", root, "--json")
    assert_ok(res)
    info = json.loads(res.out)
    assert (info["recordings"], info["subjects"], info["with_transcript"]) == (2, 2, 1)


def test_fit_refuses_a_manifest_row_without_subject(tmp_path, capfd, monkeypatch):
    """The DataModule reads the same manifest: the same line, before any training."""
    monkeypatch.chdir(tmp_path)
    root = dataset(tmp_path / "data", rows=[GOOD[0], "r2,,asouk,mri,s2/a.nii.gz,s2/a.wav,,,"])
    res = run(capfd, "fit", "--config", CONFIGS / "mri2audio.yaml", "--trainer.logger", "false",
              "--trainer.default_root_dir", tmp_path / "run", "--data.init_args.data_dir", root,
              "--data.init_args.num_workers", "0", "--trainer.accelerator", "cpu")
    assert_refused(res, "fit", root / "manifest.csv", "row 3 (id 'r2'): empty subject")
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def test_one_subject_mri_folder_names_the_split_options(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = dataset(tmp_path / "data", rows=[GOOD[0]])
    res = run(capfd, "fit", "--config", CONFIGS / "mri2audio.yaml", "--trainer.logger", "false",
              "--trainer.default_root_dir", tmp_path / "run", "--data.init_args.data_dir", root,
              "--data.init_args.num_workers", "0", "--trainer.accelerator", "cpu")
    assert_refused(res, "fit", root, "leave-one-subject-out needs at least 2 subjects, the data has 1",
                   "split: speaker_dependent", "(subjects: s1)", "--data.init_args.split")
    assert not list((tmp_path / "run").rglob("*.ckpt"))


# ------------------------------------------------------------------------------- speaker-disjoint splits


@pytest.fixture(scope="module")
def one_speaker(tmp_path_factory):
    from test_wav2uti_data import make_cohort

    return make_cohort(tmp_path_factory.mktemp("one-speaker"), speakers=1, utterances=2, seconds=0.3)


def _dnn_fit(tmp, cohort, *extra):
    from badinput_helpers import wav2uti_stack, wav2uti_tiny

    configs = wav2uti_stack("dnn.yaml") + [wav2uti_tiny(tmp, cohort, "dnn.yaml")]
    return ["fit", *[a for c in configs for a in ("--config", str(c))], *extra]


def test_one_speaker_under_a_speaker_disjoint_split_names_the_options(one_speaker, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(capfd, *_dnn_fit(tmp_path, one_speaker))
    assert_refused(res, "fit", one_speaker, "speakers: spk0", "--data.init_args.split.test_subjects",
                   "--data.init_args.split.val_subjects", "--data.init_args.split.kind speaker_dependent")
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_one_speaker_trains_without_held_out_speakers(one_speaker, tmp_path, capfd, monkeypatch):
    """The option the message names makes the same folder train (one step) and hold out its own speech."""
    monkeypatch.chdir(tmp_path)
    res = run(capfd, *_dnn_fit(tmp_path, one_speaker, "--data.init_args.split.kind", "speaker_dependent",
                               "--trainer.fast_dev_run", "1"))
    assert_ok(res)
    assert "optimizer steps" in res.err


def test_dataset_folder_that_does_not_exist(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(capfd, *_dnn_fit(tmp_path, tmp_path / "nowhere"))
    assert_refused(res, "fit", tmp_path / "nowhere", "dataset folder not found")
    assert listing(tmp_path / "run") <= {"lightning_logs"} or not (tmp_path / "run").exists()
