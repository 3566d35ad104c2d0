"""A source-filter decoder for F (ours, not the paper's): the mel drawn as a smooth envelope times a harmonic comb.

A mel-L2 loss is minimised by blurring the harmonics wherever F is unsure of F0, and blurred harmonics invert
to buzz: on the phantom F's PESQ sat at the floors while a model that knew F0 could score far higher
(docs/experiments/mri2audio.md). This decoder separates the two things a voiced spectrum holds:

- the **envelope** ``E`` (the vocal tract's filter, the frame translator's own output: a smooth mel), and
- the **source**: F0 from a pitch head trained on F0 tracked from the training audio
  (:mod:`articulate.signal.pitch`, loss :class:`~articulate.networks.mri2audio.losses.PitchLoss`), and a
  harmonic depth ``d`` per band and frame (learnt through the mel loss alone).

The mel is ``E * (d * C(F0) + 1 - d)`` in power, i.e. in the unit dB scale
``E_unit + 10 log10(d C + 1 - d) / (db_max - db_min)``, where ``C(F0)`` is what a harmonic series at F0 with
a flat spectrum looks like through the analysis (Hann window of ``n_fft``, the mel filterbank), relative to a
flat spectrum of the same power (:func:`harmonic_comb`). ``d`` starts near 0, so the decoder starts as the
frame translator; where F0 is uncertain the loss keeps ``d`` low (the blur is then the best guess), where it is
read well it deepens the comb. The comb is drawn at the *predicted* F0, detached: the pitch head learns from
its own loss only, and the depth learns how far to trust it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from articulate.networks.mri2audio.frame_translator import FrameTranslator
from articulate.networks.mri2audio.translator import TranslatorOutput
from articulate.signal.mel import MelConfig, as_mel_config, mel_basis
from articulate.signal.pitch import semitones_to_hz

HANN_ENBW_BINS = 1.5  # the integral of the Hann window's normalised power response, in bins


def hann_response(bins: torch.Tensor) -> torch.Tensor:
    """The periodic Hann window's DTFT at ``bins`` (FFT bins off the peak), normalised to 1 at 0:
    sinc(b) / (1 - b^2), whose limit at |b| = 1 is 1/2."""
    b2 = bins * bins
    near = (b2 - 1.0).abs() < 1e-4
    safe = torch.where(near, torch.full_like(bins, 2.0), bins)
    out = torch.sinc(safe) / (1.0 - safe * safe)
    return torch.where(near, torch.full_like(bins, 0.5), out)


class HarmonicComb(nn.Module):
    """``f0_hz [B, T]`` -> ``[B, n_mels, T]``: the power in each mel band of a flat-spectrum harmonic series at F0,
    relative to a flat spectrum of the same mean power (so about 1 in bands wide enough to hold many harmonics,
    peaks and troughs where they are resolved).

    The series' power spectrum at FFT bin j is ``sum_k |W(j - k F0 / df)|^2`` (k >= 1, ``df = sr / n_fft``), with
    each bin reached by its three nearest harmonics (the Hann response is below -31 dB further out); dividing by
    its mean, ``HANN_ENBW_BINS * df / F0``, makes it relative to flat.
    """

    def __init__(self, mel: MelConfig | dict | None = None):
        super().__init__()
        cfg = as_mel_config(mel)
        self.bin_hz = float(cfg.sr) / float(cfg.n_fft)
        basis = torch.from_numpy(mel_basis(cfg)).float()  # [n_mels, n_freqs]
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("band_power", basis.sum(dim=1), persistent=False)
        self.register_buffer("freqs", torch.arange(cfg.n_freqs, dtype=torch.float32) * self.bin_hz, persistent=False)

    def spectrum(self, f0_hz: torch.Tensor) -> torch.Tensor:
        """``[..., n_freqs]``: the relative power spectrum of the series at each F0 of ``f0_hz [...]``."""
        f0 = f0_hz.float().clamp_min(20.0)[..., None]
        ratio = self.freqs / f0
        nearest = torch.round(ratio)
        power = torch.zeros_like(ratio)
        for offset in (-1.0, 0.0, 1.0):
            k = nearest + offset
            b = (self.freqs - k * f0) / self.bin_hz
            power = power + torch.where(k >= 1.0, hann_response(b) ** 2, torch.zeros_like(b))
        return power * f0 / (HANN_ENBW_BINS * self.bin_hz)

    def forward(self, f0_hz: torch.Tensor) -> torch.Tensor:
        band = self.spectrum(f0_hz) @ self.basis.T  # [B, T, n_mels]
        return (band / self.band_power).transpose(1, 2)


class HarmonicFrameTranslator(FrameTranslator):
    """The frame translator (:class:`FrameTranslator`, the same arguments) with the source-filter decoder above.

    Args:
        mel: the target mel's transform (linked from the data; the comb is drawn through its filterbank).
        pitch_center, pitch_scale: the pitch head's output ``z`` maps to ``center + scale * z`` semitones re 100 Hz
            (the defaults span 80-260 Hz, adult voices, at |z| < 1.5).
        depth_init: the harmonic depth's start value (near 0: the decoder starts as the frame translator).
        the rest: as :class:`FrameTranslator`.

    Its :class:`TranslatorOutput` carries ``pitch [B, n_frames]``, the predicted F0 in semitones re 100 Hz.
    """

    def __init__(self, in_channels: int = 1, frame_channels: Sequence[int] = (16, 32, 64, 64), frame_grid: int = 4,
                 temporal_channels: int = 128, temporal_layers: int = 2, temporal_kernel: int = 3,
                 utterance_channels: int = 14, subject_channels: int = 100, n_mels: int = 64, n_frames: int = 64,
                 init_logvar: float | None = -6.0, logvar_limit: float = 10.0, norm: Literal["none", "group"] = "none",
                 mel: MelConfig | None = None, pitch_center: float = 7.0, pitch_scale: float = 6.0,
                 depth_init: float = 0.05):
        super().__init__(in_channels, frame_channels, frame_grid, temporal_channels, temporal_layers, temporal_kernel,
                         utterance_channels, subject_channels, n_mels, n_frames, init_logvar, logvar_limit, norm)
        self.mel_config = as_mel_config(mel)
        if self.mel_config.n_mels != self.n_mels:
            raise ValueError(f"HarmonicFrameTranslator: n_mels {n_mels} differs from the mel's {self.mel_config.n_mels}")
        if not 0.0 < depth_init < 1.0 or pitch_scale <= 0:
            raise ValueError(f"depth_init must be in (0, 1) and pitch_scale positive, got {depth_init}, {pitch_scale}")
        self.pitch_center, self.pitch_scale = float(pitch_center), float(pitch_scale)
        self.db_span = float(self.mel_config.db_max - self.mel_config.db_min)
        c = temporal_channels
        self.pitch_out = nn.Conv1d(c, 1, 1)
        self.depth_out = nn.Conv1d(c, n_mels, 1)
        nn.init.zeros_(self.pitch_out.weight)
        nn.init.zeros_(self.pitch_out.bias)
        nn.init.zeros_(self.depth_out.weight)
        nn.init.constant_(self.depth_out.bias, float(torch.logit(torch.tensor(depth_init))))
        self.comb = HarmonicComb(self.mel_config)

    def forward(self, x: torch.Tensor) -> TranslatorOutput:
        h, mu, logvar, subject = self.mel_features(x)
        envelope = torch.sigmoid(self.mel_out(h))  # [B, n_mels, n_frames]
        pitch = self.pitch_center + self.pitch_scale * self.pitch_out(h)[:, 0]  # [B, n_frames] semitones
        depth = torch.sigmoid(self.depth_out(h))
        comb = self.comb(semitones_to_hz(pitch.detach())).to(envelope)
        gain = 10.0 * torch.log10((depth * comb + 1.0 - depth).clamp_min(1e-6)) / self.db_span
        mel = (envelope + gain).clamp(0.0, 1.0)[:, None]
        return TranslatorOutput(mel, mu, logvar, subject, pitch)
