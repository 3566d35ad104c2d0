"""Pretrained feature weights: the checked download (file:// URLs, never the network), a wrong hash
refused, the offline message, and the FID Inception equal to pytorch-fid's own InceptionV3."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import urllib.error

import pytest
import torch

from articulate.errors import MissingPretrainedError
from articulate.metrics import backbones
from articulate.metrics.weights import WeightsFile, git_blob_sha1


@pytest.fixture
def online(tmp_path, monkeypatch):
    """Empty caches with downloads allowed (the suite sets ARTICULATE_OFFLINE=1); returns the hub dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARTICULATE_CACHE", str(tmp_path / "articulate"))
    monkeypatch.delenv("ARTICULATE_OFFLINE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _served(tmp_path, state: dict, name: str) -> tuple[str, str]:
    """Save a state dict as a 'remote' file; its file:// URL and SHA-256."""
    remote = tmp_path / "server" / name
    remote.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, remote)
    return remote.as_uri(), hashlib.sha256(remote.read_bytes()).hexdigest()


def test_lpips_trunk_is_downloaded_checked_and_cached(online, tmp_path, monkeypatch):
    import torchvision

    from articulate.metrics import LPIPS

    torch.manual_seed(0)
    state = torchvision.models.squeezenet1_1(weights=None).state_dict()
    url, sha = _served(tmp_path, state, "squeezenet1_1-b8a52dc0.pth")
    monkeypatch.setitem(backbones.LPIPS_TRUNKS, "squeeze", WeightsFile("squeezenet1_1-b8a52dc0.pth", url, sha[:8]))
    metric = LPIPS(net="squeeze")
    assert metric.comparable and "NOT COMPARABLE" not in metric.label
    cached = online / "squeezenet1_1-b8a52dc0.pth"
    assert cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    assert sorted(p.name for p in online.iterdir()) == [cached.name]  # no partial files left
    w = metric.net.net.slice1[0].weight
    torch.testing.assert_close(w, state["features.0.weight"])
    # the second time it comes from the cache: the remote file may be gone
    (tmp_path / "server" / cached.name).unlink()
    assert LPIPS(net="squeeze").comparable


def test_wrong_hash_is_refused_and_nothing_is_kept(online, tmp_path, monkeypatch):
    from articulate.metrics import FID

    url, sha = _served(tmp_path, {"x": torch.zeros(3)}, "pt_inception-2015-12-05-6726825d.pth")
    wrong = "0" * 8 if not sha.startswith("0" * 8) else "f" * 8
    monkeypatch.setitem(backbones.INCEPTION_WEIGHTS, "fid", WeightsFile("pt_inception-2015-12-05-6726825d.pth", url, wrong))
    with pytest.raises(MissingPretrainedError, match=r"Inception \(fid\) for FID: the file downloaded from file://.* "
                                                     r"failed its hash check and was refused"):
        FID()
    assert not online.exists() or not any(online.iterdir())


def test_git_blob_hash_for_i3d_files(online, tmp_path, monkeypatch):
    from articulate.metrics.backbones import I3DFeatures, InceptionI3d

    torch.manual_seed(0)
    url, _ = _served(tmp_path, InceptionI3d(400).state_dict(), "rgb_imagenet.pt")
    remote = tmp_path / "server" / "rgb_imagenet.pt"
    git = shutil.which("git")
    if git:  # git itself is the reference for the blob id
        expect = subprocess.run([git, "hash-object", str(remote)], capture_output=True, text=True, check=True).stdout.strip()
        assert git_blob_sha1(remote) == expect
    blob = git_blob_sha1(remote)
    monkeypatch.setattr(backbones, "I3D_FILES", (WeightsFile("rgb_imagenet.pt", url, git_blob_sha1="0" * 40),))
    with pytest.raises(MissingPretrainedError, match=r"I3D for FVD: .*failed its hash check.*expected git blob"):
        I3DFeatures(input_size=32)
    assert not (online / "rgb_imagenet.pt").exists()
    monkeypatch.setattr(backbones, "I3D_FILES", (WeightsFile("rgb_imagenet.pt", url, git_blob_sha1=blob),))
    feats = I3DFeatures(input_size=32)
    assert feats(torch.rand(1, 1, 8, 24, 24)).shape == (1, 400) and (online / "rgb_imagenet.pt").is_file()


def test_offline_message_and_the_off_switch(online, monkeypatch):
    from articulate.metrics import FVD, LPIPS

    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(MissingPretrainedError) as err:
        LPIPS()
    msg = str(err.value)
    assert "LPIPS squeeze trunk: weights file squeezenet1_1-b8a52dc0.pth not found" in msg
    assert "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth" in msg and str(online) in msg
    assert "offline? download from" in msg and "Temporary failure in name resolution" in msg
    with pytest.raises(MissingPretrainedError, match=r"i3d_torchscript\.pt or rgb_imagenet\.pt not found.*offline\?"):
        FVD()

    def must_not_download(*args, **kwargs):
        raise AssertionError("downloaded although ARTICULATE_OFFLINE=1")

    monkeypatch.setattr(torch.hub, "download_url_to_file", must_not_download)
    monkeypatch.setenv("ARTICULATE_OFFLINE", "1")
    with pytest.raises(MissingPretrainedError, match=r"squeezenet1_1-b8a52dc0\.pth not found.*ARTICULATE_OFFLINE is set"):
        LPIPS()
    # a weights_path that is wrong is never replaced by a download
    monkeypatch.delenv("ARTICULATE_OFFLINE")
    with pytest.raises(MissingPretrainedError, match="weights_path"):
        LPIPS(weights_path="/nowhere/at/all.pth")


def test_fid_inception_equals_pytorch_fid(monkeypatch, tmp_path):
    """Our FID features with the FID weights are pytorch-fid's InceptionV3 (its resize, scaling, pool3)."""
    import pytorch_fid.inception as pfi

    from articulate.metrics.backbones import InceptionFeatures

    rand = InceptionFeatures(random_init=True, input_size=299)
    state = {k: v.clone() for k, v in rand.net.state_dict().items()}
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    ours = InceptionFeatures(weights_path=str(path))
    assert ours.comparable and "pytorch-fid" in ours.label
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)  # their constructor downloads
    ref = pfi.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    x = torch.rand(2, 1, 64, 80, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expect = ref(x.repeat(1, 3, 1, 1))[0].flatten(1)
    torch.testing.assert_close(ours(x), expect, rtol=1e-4, atol=1e-5)
