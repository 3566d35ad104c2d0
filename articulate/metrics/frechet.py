"""Frechet distances: FID on per-frame Inception features, FVD on I3D clip features.

``frechet_distance`` is computed in torch (float64, no scipy) with the symmetric form
``tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2)``: the inner matrix is symmetric positive
semi-definite, so one ``eigh`` gives its square root's trace exactly, without the complex
round-off ``scipy.linalg.sqrtm`` produces on near-singular covariances (the tests compare both).

The wav2uti paper calls its video metric FID but says it used I3D features; its public code uses
per-frame Inception features. We report both: ``FID`` (frames) and ``FVD`` (clips).
Both metrics store, per scored unit, the pair (real feature, generated feature) as one keyed row
(:mod:`articulate.metrics.dedup`), so DDP gives the single-process value and padding duplicates
are dropped. Memory: 2 x feature-dim float64 numbers per frame (FID: 32 KiB per frame).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from articulate.metrics.backbones import I3DFeatures, InceptionFeatures
from articulate.metrics.dedup import SampleMetric
from articulate.metrics.functional import PIXEL_RANGES, PixelRange


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp_min(0.0).sqrt()) @ v.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)`` in float64."""
    mu1, mu2, s1, s2 = (t.to(torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    r1 = _sqrt_psd((s1 + s1.T) / 2)
    inner = r1 @ ((s2 + s2.T) / 2) @ r1
    tr_covmean = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0.0).sqrt().sum()
    return ((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2.0 * tr_covmean


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (N - 1, as numpy.cov and the FID reference) of ``[N, D]``."""
    x = features.to(torch.float64)
    if x.shape[0] < 2:
        raise ValueError(f"a Frechet distance needs at least 2 feature vectors per set, got {x.shape[0]}")
    mu = x.mean(dim=0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def frechet_distance_features(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Frechet distance between the Gaussians fitted to two feature sets ``[N, D]`` and ``[M, D]``.

    With fewer vectors than dimensions (a validation set of a few hundred frames against 2048-d
    Inception features) the covariances are low-rank: with ``S1 = A'A`` and ``S2 = B'B`` (``A``,
    ``B`` the centred features over sqrt(N - 1)), ``tr sqrt(S1 S2)`` is the nuclear norm of
    ``A B'`` (an N x M matrix), which is exact and much cheaper than a D x D decomposition.
    """
    x, y = real.to(torch.float64), fake.to(torch.float64)
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if min(n, m) < 2:
        raise ValueError(f"a Frechet distance needs at least 2 feature vectors per set, got {n} and {m}")
    if y.shape[1] != d:
        raise ValueError(f"feature dimensions differ: {d} vs {y.shape[1]}")
    if max(n, m) > d:
        return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    mu1, mu2 = x.mean(0), y.mean(0)
    a = (x - mu1) / math.sqrt(n - 1)
    b = (y - mu2) / math.sqrt(m - 1)
    nuclear = torch.linalg.svdvals(a @ b.T).sum()
    return ((mu1 - mu2) ** 2).sum() + (a * a).sum() + (b * b).sum() - 2.0 * nuclear


def _to_unit(x: torch.Tensor, pixel_range: PixelRange) -> torch.Tensor:
    x = x.float()
    if pixel_range == "signed":
        x = (x + 1.0) / 2.0
    elif pixel_range == "byte":
        x = x / 255.0
    elif pixel_range != "unit":
        raise ValueError(f"pixel_range must be one of {PIXEL_RANGES}, got {pixel_range!r}")
    return x.clamp(0.0, 1.0)


class _PairedFeatureMetric(SampleMetric):
    higher_is_better = False

    def __init__(self, extractor: nn.Module, pixel_range: PixelRange, batch_size: int, **kwargs: Any):
        if pixel_range not in PIXEL_RANGES:
            raise ValueError(f"pixel_range must be one of {PIXEL_RANGES}, got {pixel_range!r}")
        super().__init__(**kwargs)
        self.dim = int(extractor.dim)
        self.width = 2 * self.dim
        self.extractor = extractor
        self.pixel_range = pixel_range
        self.batch_size = int(batch_size)
        self.comparable: bool = bool(getattr(extractor, "comparable", False))
        self.label: str = str(getattr(extractor, "label", type(extractor).__name__))

    @torch.no_grad()
    def _features(self, units: torch.Tensor) -> torch.Tensor:
        dev = next(self.extractor.parameters(), torch.empty(0)).device
        return torch.cat([self.extractor(units[i:i + self.batch_size].to(dev)).to(torch.float64).cpu()
                          for i in range(0, units.shape[0], self.batch_size)])

    def compute(self) -> torch.Tensor:
        rows = self._rows()
        if rows.shape[0] < 2:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.device)
        return frechet_distance_features(rows[:, :self.dim], rows[:, self.dim:]).to(self.device)

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(real, generated) features kept after de-duplication (local unless inside a synced compute)."""
        rows = self._rows()
        return rows[:, :self.dim], rows[:, self.dim:]


class FID(_PairedFeatureMetric):
    """Frechet Inception Distance over frames (each trailing 2D image of ``[B, ..., H, W]`` is a frame).

    ``update(pred, target, sample_index=None, valid=None)``. ``weights``: ``"fid"`` (TF FID
    Inception, comparable with published FIDs) or ``"torchvision"``; ``extractor`` replaces the
    network altogether (any module mapping ``[N, 1, H, W]`` in [0, 1] to ``[N, dim]`` with a ``dim``).
    """
    registered_name = "fid"
    default_inputs = ('video_pred', 'video_target')

    def __init__(self, weights: Literal["fid", "torchvision"] = "fid", weights_path: str | None = None,
                 random_init: bool = False, input_size: int = 299, pixel_range: PixelRange = "unit",
                 batch_size: int = 32, extractor: nn.Module | None = None, **kwargs: Any):
        if extractor is None:
            extractor = InceptionFeatures(weights, weights_path=weights_path, random_init=random_init,
                                          input_size=input_size)
        super().__init__(extractor, pixel_range, batch_size, **kwargs)

    def update(self, pred: torch.Tensor, target: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        per = 1 if pred.ndim <= 3 else int(torch.tensor(pred.shape[1:-2]).prod())
        h, w = pred.shape[-2:]
        fake = self._features(_to_unit(pred, self.pixel_range).reshape(-1, 1, h, w))
        real = self._features(_to_unit(target, self.pixel_range).reshape(-1, 1, h, w))
        self._add(torch.cat([real, fake], dim=1), sample_index, valid, parts_per_sample=per)


class FVD(_PairedFeatureMetric):
    """Frechet Video Distance on I3D features of clips.

    ``update(pred, target, sample_index=None, valid=None)`` with videos ``[B, 1, T, H, W]`` (or
    ``[B, T, H, W]``). ``clip_frames`` cuts each video into non-overlapping clips of that many frames
    (16 is the FVD convention; a remainder shorter than a clip is dropped); ``None`` scores each
    whole video as one clip.
    """
    registered_name = "fvd"
    default_inputs = ('video_pred', 'video_target')

    def __init__(self, weights_path: str | None = None, random_init: bool = False,
                 feature: Literal["logits", "pool"] = "logits", input_size: int = 224, clip_frames: int | None = 16,
                 pixel_range: PixelRange = "unit", batch_size: int = 4, extractor: nn.Module | None = None,
                 **kwargs: Any):
        if extractor is None:
            extractor = I3DFeatures(weights_path=weights_path, random_init=random_init, feature=feature,
                                    input_size=input_size)
        super().__init__(extractor, pixel_range, batch_size, **kwargs)
        self.clip_frames = clip_frames

    def _clips(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim == 4:
            video = video[:, None]
        if video.ndim != 5:
            raise ValueError(f"expected videos [B, 1, T, H, W] or [B, T, H, W], got shape {tuple(video.shape)}")
        b, c, t, h, w = video.shape
        n = self.clip_frames or t
        k = t // n
        if k == 0:
            raise ValueError(f"videos have {t} frames, fewer than clip_frames={n}")
        clips = video[:, :, :k * n].reshape(b, c, k, n, h, w).permute(0, 2, 1, 3, 4, 5)
        return clips.reshape(b * k, c, n, h, w)

    def update(self, pred: torch.Tensor, target: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        fake_clips = self._clips(_to_unit(pred, self.pixel_range))
        real_clips = self._clips(_to_unit(target, self.pixel_range))
        per = fake_clips.shape[0] // pred.shape[0]
        self._add(torch.cat([self._features(real_clips), self._features(fake_clips)], dim=1), sample_index, valid,
                  parts_per_sample=per)


__all__ = ["frechet_distance", "frechet_distance_features", "gaussian_stats", "FID", "FVD"]
