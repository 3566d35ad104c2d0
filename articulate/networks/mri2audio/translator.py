"""Translator F: tagged-MRI sequence -> 64 x 64 mel spectrogram (the paper's asymmetric fully-CNN translator).

Encoder: five 3D conv layers (kernel 3, "same" padding, ReLU but for the last, linear one that
gives the latent), each followed by a max-pool that
halves height and width and, while more than one frame is left, the time axis (the paper: "each 3D
convolutional layer yields the same dimension in the temporal direction, where the dimension is
reduced by half after each 3D MaxPooling"). 26 frames become 13, 6, 3, 1; 128 x 128 becomes 4 x 4.

Latent: 128 channels on a 4 x 4 grid, split by a tensor slice along the channel axis into
14 channels of mean and 14 of log-variance of the utterance factor u (reparameterised as
u = mu + sigma * eps while training, u = mu in eval) and 100 channels of subject factor s.

Decoder: [u, s] (114 channels) -> four 2D transposed convolutions (kernel 4, stride 2: 4 -> 64),
ReLU between them and a per-pixel sigmoid at the end: the unit-scale mel of the DataModule.

The paper's supplementary (layer widths) is not public: the widths below are ours, chosen so that
F has about 1.1 M parameters (the Lip2AudSpec baseline has ~28 M) and trains on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from articulate.networks.layout import channels_last


class TranslatorOutput(NamedTuple):
    """``mel [B, 1, 64, 64]`` in (0, 1); latent maps ``[B, C, h, w]`` of the tensor slice; ``pitch [B, frames]``
    (semitones re 100 Hz) and its predicted error s.d. ``pitch_sd`` from a translator with a pitch head, else None."""

    mel: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    subject: torch.Tensor
    pitch: torch.Tensor | None = None
    pitch_sd: torch.Tensor | None = None


class HeterogeneousTranslator(nn.Module):
    """F: ``x [B, 1, T, H, W]`` in [0, 1] -> :class:`TranslatorOutput`.

    Args:
        in_channels: image channels (1 for tagged MRI).
        encoder_channels: output width of each 3D conv layer; the last one is the latent width and
            must equal ``2 * utterance_channels + subject_channels``.
        decoder_channels: output width of each transposed conv but the last (which gives
            ``out_channels``); ``len(decoder_channels) + 1`` layers, each doubling the size.
        utterance_channels: M, the number of mean (and of log-variance) channels of u.
        subject_channels: channels of the subject factor s.
        latent_size: side of the latent grid. The max-pools halve space only while it stays at least
            this size (a 64-px input skips the last spatial pool); a larger encoder output is then
            average-pooled to it (identity for the paper's 128 x 128), so the decoder always gives
            ``latent_size * 2 ** n_deconv`` pixels.
        logvar_limit: the log-variance channels are clamped to ``[-limit, limit]``; the pairwise KL
            divides by sigma_2^2, which the reconstruction loss alone would drive towards 0.
        subtract_mean_frame: subtract each pixel's mean over the sequence before the encoder (not in
            the paper, which is silent on input normalisation; the ``mean_frame`` variant). The tag grid
            and the subject's static anatomy are the same in every frame and dominate the raw
            intensities; what tells the sound is how they move. Without it F learns the average
            spectrogram first and reads the motion only several times later (figures:
            docs/experiments/mri2audio.md).
        kaiming_init: He-initialise the encoder convolutions (normal, fan-in, ReLU gain; zero bias).
            PyTorch's default conv initialisation has a third of that gain: the signal halves at
            every layer, so the five-layer latent starts ~15x weaker than the input and F spends its
            first steps on an input-independent average (the paper does not state an init).
        init_logvar: start value of the utterance log-variance channels (their weights zeroed, their biases set
            to it). ``None`` keeps the init of the other channels (log sigma^2 ~ 0: sigma ~ 1). u = mu + sigma eps
            is then drawn with unit noise, as large as mu at the start, so the utterance code carries little
            until L_rec has pushed the log-variance down, and F leans on the subject code meanwhile (the paper,
            which has no prior on u, does not state an init; configs/mri2audio.yaml starts at -6).

    Options measured on the phantom and removed because none helped (a per-pixel output bias, encoder
    normalisation, input standardisation or scaling, a time axis in the latent): docs/experiments/mri2audio.md.
    """

    def __init__(
        self,
        in_channels: int = 1,
        encoder_channels: Sequence[int] = (16, 32, 64, 128, 128),
        decoder_channels: Sequence[int] = (128, 64, 32),
        utterance_channels: int = 14,
        subject_channels: int = 100,
        out_channels: int = 1,
        latent_size: int = 4,
        logvar_limit: float = 10.0,
        subtract_mean_frame: bool = False,
        kaiming_init: bool = True,
        init_logvar: float | None = None,
    ):
        super().__init__()
        encoder_channels, decoder_channels = list(encoder_channels), list(decoder_channels)
        if not encoder_channels:
            raise ValueError("encoder_channels must list at least one layer")
        latent = 2 * utterance_channels + subject_channels
        if encoder_channels[-1] != latent:
            raise ValueError(
                f"the last encoder width ({encoder_channels[-1]}) must equal 2 * utterance_channels + "
                f"subject_channels = {latent}: the latent is sliced into mean, log-variance and subject channels"
            )
        if logvar_limit <= 0:
            raise ValueError(f"logvar_limit must be positive, got {logvar_limit}")
        self.utterance_channels = utterance_channels
        self.subject_channels = subject_channels
        self.latent_size = latent_size
        self.logvar_limit = float(logvar_limit)
        self.subtract_mean_frame = bool(subtract_mean_frame)

        widths = [in_channels, *encoder_channels]
        self.encoder = nn.ModuleList(nn.Conv3d(a, b, kernel_size=3, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        if kaiming_init:
            for conv in self.encoder:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        if init_logvar is not None:
            if not -logvar_limit <= float(init_logvar) <= logvar_limit:
                raise ValueError(f"init_logvar must be within [-logvar_limit, logvar_limit], got {init_logvar}")
            latent_conv, m = self.encoder[-1], utterance_channels
            with torch.no_grad():
                latent_conv.weight[m : 2 * m].zero_()
                latent_conv.bias[m : 2 * m].fill_(float(init_logvar))

        widths = [utterance_channels + subject_channels, *decoder_channels, out_channels]
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:])
        )

    @property
    def out_size(self) -> int:
        return self.latent_size * 2 ** len(self.decoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, C, T, H, W]`` -> ``(mu, logvar, subject)`` maps ``[B, ., latent, latent]``."""
        if x.dim() != 5:
            raise ValueError(f"expected [B, C, T, H, W], got shape {tuple(x.shape)}")
        h = x - x.mean(dim=2, keepdim=True) if self.subtract_mean_frame else x
        h = channels_last(h)  # on CPU: oneDNN's own layout, same values in less time (articulate.networks.layout)
        for i, conv in enumerate(self.encoder):
            h = conv(h)
            hidden = i < len(self.encoder) - 1  # the last layer is the latent, see below
            # Halve time only while there is something to halve (26 -> 13 -> 6 -> 3 -> 1 -> 1), and space
            # only while it stays at least the latent grid: a 64-px input (the CPU preset) ends on 4 x 4 after
            # four pools instead of 2 x 2 copied onto 4 x 4, which gave the decoder four identical quarters.
            kt = 2 if h.shape[2] >= 2 else 1
            ks = 2 if min(h.shape[-2:]) // 2 >= self.latent_size else 1
            # conv -> ReLU -> max-pool is computed as conv -> max-pool -> ReLU: max and ReLU commute exactly
            # (ReLU is monotonic), and the ReLU then runs on 4-8x fewer values.
            h = F.max_pool3d(h, kernel_size=(kt, ks, ks))
            # The latent is linear, so the mean and log-variance can be negative
            # (after a ReLU, log sigma^2 >= 0 would pin sigma >= 1 and drown mu in the noise).
            if hidden:
                h = F.relu(h)
        h = h.mean(dim=2)  # any frames left (inputs longer than 26 frames) are averaged; for 26 frames T is already 1
        if h.shape[-2:] != (self.latent_size, self.latent_size):
            h = F.adaptive_avg_pool2d(h, self.latent_size)
        m = self.utterance_channels
        mu = h[:, :m]
        logvar = h[:, m : 2 * m].clamp(-self.logvar_limit, self.logvar_limit)
        subject = h[:, 2 * m :]
        return mu, logvar, subject

    def sample_noise(self, like: torch.Tensor) -> torch.Tensor:
        """eps ~ N(0, I) of the reparameterisation (a method so tests can fix it)."""
        return torch.randn_like(like)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + torch.exp(0.5 * logvar) * self.sample_noise(mu)

    def decode(self, utterance: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        h = channels_last(torch.cat([utterance, subject], dim=1))
        for i, deconv in enumerate(self.decoder):
            h = deconv(h)
            if i < len(self.decoder) - 1:
                h = F.relu(h)
        return torch.sigmoid(h)

    def forward(self, x: torch.Tensor) -> TranslatorOutput:
        mu, logvar, subject = self.encode(x)
        mel = self.decode(self.reparameterize(mu, logvar), subject)
        return TranslatorOutput(mel, mu, logvar, subject)
