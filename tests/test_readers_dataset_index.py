"""Dataset indexing: discovery of MRI, UltraSuite/TaL and video layouts; manifests and their refusals."""

from __future__ import annotations

import numpy as np
import pytest

from articulate.errors import InputError
from articulate.readers.audio import write_audio
from articulate.readers.dataset_index import Recording, index_dataset, read_manifest, write_manifest
from articulate.readers.mri import write_mri
from articulate.readers.ultrasound import UltrasoundParams, write_utterance
from articulate.readers.video import write_video

SR = 16000


def _wav(path):
    return write_audio(path, np.zeros(1600, np.float32), SR)


@pytest.fixture
def mixed_root(tmp_path):
    root = tmp_path / "data"
    for subject in ("s01", "s02"):
        for utt in ("asouk", "ageese"):
            write_mri(root / subject / f"{utt}.nii.gz", np.zeros((3, 4, 4), np.float32))
            _wav(root / subject / f"{utt}.wav")
    params = UltrasoundParams(8, 16, angle=0.05, fps=60.0)
    scan = np.zeros((5, 8, 16), np.uint8)
    write_utterance(root / "spk1" / "001", scan, params, np.zeros(1600, np.float32), SR, "say hello")
    write_video(root / "spk1" / "001.mp4", np.zeros((4, 8, 8), np.uint8), 30)  # TaL-style lip video beside the .ult
    write_video(root / "spk2" / "clip.mp4", np.zeros((4, 8, 8), np.uint8), 60)
    _wav(root / "spk2" / "clip.wav")
    write_video(root / "spk2" / "silent.mp4", np.zeros((4, 8, 8), np.uint8), 60)  # no audio: not a recording
    np.save(root / "s01" / "features.npy", np.zeros((3, 4, 4)))  # bare array without audio: ignored
    return root


def test_discovery_of_every_layout(mixed_root):
    records = index_dataset(mixed_root)
    ids = [r.id for r in records]
    assert ids == ["s01/ageese", "s01/asouk", "s02/ageese", "s02/asouk", "spk1/001", "spk2/clip"]
    mri = records[1]
    assert (mri.kind, mri.subject, mri.utterance) == ("mri", "s01", "asouk")
    assert mri.image == mixed_root / "s01" / "asouk.nii.gz" and mri.audio == mixed_root / "s01" / "asouk.wav"
    ult = records[4]
    assert (ult.kind, ult.subject, ult.transcript) == ("ultrasound", "spk1", "say hello")
    assert ult.image.name == "001.ult" and ult.param.name == "001.param" and ult.text.name == "001.txt"
    assert ult.extra["video"].endswith("001.mp4")
    video = records[5]
    assert video.kind == "ultrasound" and video.image.name == "clip.mp4" and video.param is None


def test_manifest_round_trip_relative_paths(mixed_root, tmp_path):
    records = index_dataset(mixed_root)
    records[0].extra["split"] = "train"
    path = write_manifest(records, mixed_root / "manifest.csv")
    text = path.read_text()
    assert text.splitlines()[0] == "id,subject,utterance,kind,image,audio,param,text,transcript,split,video"
    assert "s01/ageese.nii.gz,s01/ageese.wav" in text and str(mixed_root) not in text
    back = index_dataset(mixed_root)  # the manifest now takes precedence over discovery
    assert [(r.id, r.kind, r.image, r.audio, r.param, r.text, r.transcript) for r in back] == [
        (r.id, r.kind, r.image, r.audio, r.param, r.text, r.transcript) for r in records
    ]
    assert back[0].extra["split"] == "train" and back[1].extra.get("split", "") == ""
    # The folder moves, the manifest still works.
    moved = tmp_path / "moved"
    mixed_root.rename(moved)
    assert read_manifest(moved / "manifest.csv")[4].image == moved / "spk1" / "001.ult"


def test_empty_folder_and_missing_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no recordings found"):
        index_dataset(tmp_path / "empty")
    with pytest.raises(InputError, match=r"nowhere: folder not found"):
        index_dataset(tmp_path / "nowhere")


def test_param_without_ult_is_explained(tmp_path):
    (tmp_path / "spk").mkdir()
    (tmp_path / "spk" / "a.param").write_text("NumVectors=8\nPixPerVector=16\nAngle=0.1\nFramesPerSec=60\n")
    with pytest.raises(InputError, match=r"1 \.param file\(s\) have no \.ult beside them"):
        index_dataset(tmp_path)


def test_manifest_refusals(tmp_path):
    _wav(tmp_path / "a.wav")
    write_mri(tmp_path / "a.nii.gz", np.zeros((3, 4, 4), np.float32))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,subject,image\nx,s,a.nii.gz\n")
    with pytest.raises(InputError, match=r"manifest\.csv: manifest lacks column\(s\) utterance, kind, audio"):
        index_dataset(tmp_path)
    header = "id,subject,utterance,kind,image,audio,param,text,transcript\n"
    manifest.write_text(header + "r1,s,u,mri,a.nii.gz,a.wav,,,\nr2,s,u,mri,b.nii.gz,a.wav,,,\n")
    with pytest.raises(InputError, match=r"manifest\.csv: row 3 \(id 'r2'\): image file .*b\.nii\.gz does not exist"):
        read_manifest(manifest)
    manifest.write_text(header + "r1,s,u,ct,a.nii.gz,a.wav,,,\n")
    with pytest.raises(InputError, match=r"row 2 \(id 'r1'\): kind 'ct' is not one of mri, ultrasound"):
        read_manifest(manifest)
    manifest.write_text(header + "r1,s,u,mri,a.nii.gz,a.wav,,,\nr1,s,u,mri,a.nii.gz,a.wav,,,\n")
    with pytest.raises(InputError, match="duplicate id"):
        read_manifest(manifest)
    manifest.write_text(header)
    with pytest.raises(InputError, match="manifest lists no recordings"):
        read_manifest(manifest)


def test_recording_defaults():
    r = Recording("a/b", "a", "b", "mri", None)
    assert r.audio is None and r.extra == {}
