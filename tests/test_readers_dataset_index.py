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


# ---------------------------------------------------------------- video with its audio inside, AAA, manifests


def test_videos_with_in_container_audio_are_recordings(tmp_path):
    root = tmp_path / "data"
    frames = np.zeros((6, 8, 8), np.uint8)
    write_video(root / "spk" / "inside.mp4", frames, 30, audio=np.zeros(3200, np.float32), sr=SR)
    write_video(root / "spk" / "both.avi", frames, 30, audio=np.zeros(3200, np.float32), sr=SR)
    _wav(root / "spk" / "both.wav")
    write_video(root / "spk" / "mute.mp4", frames, 30)  # no audio track, no .wav: not a recording
    (root / "spk" / "inside.param").write_text("NumVectors=8\nPixPerVector=16\nAngle=0.1\nFramesPerSec=30\nTimeInSecsOfFirstFrame=0.1\n")
    (root / "spk" / "inside.txt").write_text("from the prompt\n")
    records = {r.id: r for r in index_dataset(root)}
    assert sorted(records) == ["spk/both", "spk/inside"]
    inside, both = records["spk/inside"], records["spk/both"]
    assert inside.audio is None and inside.extra["audio_source"] == "container"
    assert inside.param.name == "inside.param" and inside.transcript == "from the prompt"
    assert both.audio.name == "both.wav" and both.extra["audio_source"] == "wav"  # the .wav wins
    manifest = write_manifest(list(records.values()), root / "manifest.csv")
    assert "audio_source" not in manifest.read_text().splitlines()[0]  # derived when read, not written
    back = {r.id: r for r in read_manifest(manifest)}
    assert back["spk/inside"].extra["audio_source"] == "container" and back["spk/both"].extra["audio_source"] == "wav"
    assert back["spk/inside"].transcript == "from the prompt"


def test_real_folders(samples_dir):
    ultrax = index_dataset(samples_dir / "ultrax-video")
    assert [r.id for r in ultrax] == [f"Ultrax_TD_00{i}" for i in range(1, 5)]
    assert all(r.audio is None and r.extra["audio_source"] == "container" and r.image.suffix == ".avi" for r in ultrax)
    aaa = index_dataset(samples_dir / "aaa-satkit")
    assert [(r.id, r.param.name, r.audio.name, r.transcript) for r in aaa] == [
        ("File009", "File009US.txt", "File009.wav", "na"), ("File156", "File156US.txt", "File156.wav", "gap")]


def test_textgrid_transcript_when_no_prompt(samples_dir, tmp_path):
    import shutil

    for suffix in (".ult", "US.txt", ".wav", ".TextGrid"):
        shutil.copy(samples_dir / "aaa-satkit" / f"File156{suffix}", tmp_path / f"File156{suffix}")
    (rec,) = index_dataset(tmp_path)
    assert rec.transcript == "gap" and rec.text is None


def test_manifest_text_column_is_the_transcript_of_video_rows(tmp_path):
    write_video(tmp_path / "v1.mp4", np.zeros((4, 8, 8), np.uint8), 30, audio=np.zeros(1600, np.float32), sr=SR)
    write_video(tmp_path / "v2.mp4", np.zeros((4, 8, 8), np.uint8), 30, audio=np.zeros(1600, np.float32), sr=SR)
    _wav(tmp_path / "v2.wav")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "v1.txt").write_text("the prompt of v1\n2020\n")
    header = "id,subject,utterance,kind,image,audio,param,text,transcript\n"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(header + "a,s,u1,ultrasound,v1.mp4,,,prompts/v1.txt,\n"
                        "b,s,u2,ultrasound,v2.mp4,v2.wav,,say it again,\n"
                        "c,s,u3,ultrasound,v1.mp4,,,prompts/v1.txt,the column wins\n")
    a, b, c = read_manifest(manifest)
    assert (a.transcript, a.text.name, a.audio, a.extra["audio_source"]) == ("the prompt of v1", "v1.txt", None, "container")
    assert (b.transcript, b.text, b.extra["audio_source"]) == ("say it again", None, "wav")  # text itself
    assert c.transcript == "the column wins"
    manifest.write_text(header + "a,s,u1,ultrasound,v1.mp4,,,prompts/missing.txt,\n")
    with pytest.raises(InputError, match=r"row 2 \(id 'a'\): text file .*missing\.txt does not exist"):
        read_manifest(manifest)
