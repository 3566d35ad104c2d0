"""Loss components of the mri2audio translator (paper eqs. 1-4) and of the Lip2AudSpec baseline.

Each loss is an ``nn.Module`` chosen in YAML, so a study can swap one without touching the
LightningModule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from articulate.losses import LossTerms
from articulate.metrics.functional import corr2d

Reduction = Literal["sum", "mean"]
GeneratorForm = Literal["non_saturating", "saturating"]


class ReconstructionLoss(nn.Module):
    """L_rec = ||F(x) - M(y)||_2^2 (eq. 1), averaged over the batch.

    ``reduction="sum"`` (default) is eq. 1 literally: the squared L2 norm of each 64 x 64
    difference (a sum over pixels), then the batch mean. The scale matters because the paper
    weights the other terms against it (beta = lambda = 0.5): with a per-pixel mean the
    adversarial term (~0.7 per sample) would outweigh a reconstruction error of ~0.02 per pixel
    by two orders of magnitude. ``"mean"`` is the per-pixel MSE (``nn.MSELoss``).

    ``low_bands`` / ``low_band_weight`` (ours; 0 / 1 = eq. 1): the squared error of the lowest ``low_bands`` mel bands
    (``pred [B, 1, n_mels, frames]``) counts ``low_band_weight`` times, for where wide-band PESQ listens (the
    harmonics and the first formant below ~1 kHz).
    """

    def __init__(self, reduction: Reduction = "sum", low_bands: int = 0, low_band_weight: float = 1.0):
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if low_bands < 0 or low_band_weight <= 0:
            raise ValueError(f"low_bands must be >= 0 and low_band_weight positive, got {low_bands}, {low_band_weight}")
        self.reduction = reduction
        self.low_bands, self.low_band_weight = int(low_bands), float(low_band_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        sq = (pred - target).square()
        if self.low_bands and self.low_band_weight != 1.0:
            weight = torch.ones(sq.shape[-2], 1, dtype=sq.dtype, device=sq.device)
            weight[: self.low_bands] = self.low_band_weight
            sq = sq * weight
        sq = sq.flatten(1)
        per_sample = sq.sum(1) if self.reduction == "sum" else sq.mean(1)
        return per_sample.mean()


def gaussian_kl(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Element-wise KL(N(mu1, s1^2) || N(mu2, s2^2)) from log-variances (eq. 2's summand).

    -1/2 [1 + log(s1^2/s2^2) - s1^2/s2^2 - (mu1 - mu2)^2 / s2^2], with every ratio computed as an
    exponential of a log-variance difference (no division by a variance that can underflow).
    """
    diff = logvar1 - logvar2
    return -0.5 * (1.0 + diff - diff.exp() - (mu1 - mu2).square() * torch.exp(-logvar2))


class PairwiseKL(nn.Module):
    """L_KL between the utterance factors of two recordings of the same utterance (eq. 2).

    The mean and log-variance maps are ``[B, M, h, w]`` (M = 14). The KL is that of the two
    factorised Gaussians over all ``M x h x w`` latent dimensions (the sum over the M channels of
    eq. 2, and over latent positions; with a 1 x 1 latent it is eq. 2 exactly). ``weight [B]``
    (the paper's beta per pair: 0.5 for the same utterance, 0 otherwise) multiplies each pair;
    the result is the mean over the batch, so pairs of different utterances add nothing.
    """

    def forward(
        self,
        mu1: torch.Tensor,
        logvar1: torch.Tensor,
        mu2: torch.Tensor,
        logvar2: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        per_pair = gaussian_kl(mu1, logvar1, mu2, logvar2).flatten(1).sum(1)
        if weight is not None:
            per_pair = per_pair * weight.to(per_pair.dtype)
        return per_pair.mean()


class AdversarialLoss(nn.Module):
    """GAN losses on discriminator *logits* (binary cross-entropy computed with softplus).

    Discriminator (eq. 3, maximised by D, i.e. minimised as BCE):
        L_D = -log D(real) - log(1 - D(fake)) = softplus(-l_real) + softplus(l_fake).

    Generator, ``generator_form``:

    - ``"non_saturating"`` (default): -log D(fake) = softplus(-l_fake).
    - ``"saturating"``: the minimax term log(1 - D(fake)) = -softplus(l_fake).

    The paper prints eq. 4 as L_F:D = E[-log(1 - D(fake))] to be *minimised* by F; taken
    literally that drives D(fake) to 0, i.e. it trains F to be detected, so we read it as the
    minimax objective with the sign lost, which is ``"saturating"`` here. We use the
    non-saturating form by default (Goodfellow et al. 2014, sec. 3): both have the same fixed
    point, but early in training D rejects fakes confidently (l_fake << 0) and the minimax
    gradient d/dl log(1 - sigmoid(l)) = -sigmoid(l) vanishes there, while the non-saturating
    one, d/dl -log sigmoid(l) = sigmoid(l) - 1, stays near -1.
    """

    def __init__(self, generator_form: GeneratorForm = "non_saturating"):
        super().__init__()
        if generator_form not in ("non_saturating", "saturating"):
            raise ValueError(f"generator_form must be 'non_saturating' or 'saturating', got {generator_form!r}")
        self.generator_form = generator_form

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.generator_form == "non_saturating":
            return F.softplus(-fake_logits).mean()
        return -F.softplus(fake_logits).mean()

    def forward(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return self.generator_loss(fake_logits)


class Corr2DMSELoss(nn.Module):
    """Lip2AudSpec's loss: -corr2 + MSE (per-sample MATLAB corr2, averaged over the batch).

    The original Keras code centres both tensors before its MSE term; we take the plain MSE, so
    the loss also fixes the spectrogram's level (which corr2 ignores). A constant prediction has
    an undefined corr2 and counts as 0.
    """

    def __init__(self, corr_weight: float = 1.0, mse_weight: float = 1.0):
        super().__init__()
        self.corr_weight = corr_weight
        self.mse_weight = mse_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        r = corr2d(pred, target, undefined=0.0).mean()
        return self.mse_weight * F.mse_loss(pred, target) - self.corr_weight * r


class PitchLoss(LossTerms):
    """``loss_pitch``: a pitch head's error on the voiced frames, averaged over them (0 when a batch has none).

    ``kind="mse"``: the squared error in units of ``scale`` semitones. ``kind="gaussian_nll"``: that, plus the Gaussian
    negative log-likelihood of the *detached* error under the head's own s.d., ``(err / sd)^2 / 2 + log(sd / scale)``,
    which trains the s.d. to the error the head makes while the mean learns as with the squared error alone (the
    full NLL would scale the mean's gradient by 1 / sd^2 and slow it while the head is unsure; Seitzer et al. 2022).
    A translator without an s.d. gets the squared error.

    Context: ``pitch`` (the translator's prediction ``[N, frames]``, or None: an error), ``pitch_sd`` (or None),
    ``pitch_target`` and ``voiced`` (the F0 tracked from the audio, :mod:`articulate.signal.pitch`; the DataModule
    gives them with ``data.init_args.pitch: true``).
    """

    names = ("loss_pitch",)
    needs_data = {"pitch": True}  # the DataModule option that gives the targets (checked before training)

    def __init__(self, kind: Literal["mse", "gaussian_nll"] = "gaussian_nll", scale: float = 1.0):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"PitchLoss: scale must be positive, got {scale}")
        if kind not in ("mse", "gaussian_nll"):
            raise ValueError(f"PitchLoss: kind must be 'mse' or 'gaussian_nll', got {kind!r}")
        self.kind, self.scale = kind, float(scale)

    def forward(self, context: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        pred = context.get("pitch")
        if pred is None:
            raise ValueError("PitchLoss needs a translator with a pitch head (e.g. HarmonicFrameTranslator)")
        target, voiced = context.get("pitch_target"), context.get("voiced")
        if target is None or voiced is None:
            raise ValueError("PitchLoss needs the tracked F0 in the batch: set data.init_args.pitch: true")
        w = voiced.to(pred.dtype)
        err = pred - target.to(pred.dtype)
        sd = context.get("pitch_sd")
        per_frame = (err / self.scale) ** 2
        if self.kind == "gaussian_nll" and sd is not None:
            per_frame = per_frame + 0.5 * (err.detach() / sd) ** 2 + torch.log(sd / self.scale)
        return {"loss_pitch": (per_frame * w).sum() / w.sum().clamp_min(1.0)}
