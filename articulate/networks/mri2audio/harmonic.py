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
flat spectrum of the same power (:class:`HarmonicComb`). ``d`` starts near 0, so the decoder starts as the
frame translator; where F0 is uncertain the loss keeps ``d`` low (the blur is then the best guess), where it is
read well it deepens the comb. The comb is drawn at the *predicted* F0 (by default blurred by the head's own predicted
error), detached: the pitch head learns from its own loss only, and the depth learns how far to trust it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from articulate.networks.mri2audio.frame_translator import FrameTranslator
from articulate.networks.mri2audio.translator import TranslatorOutput
from articulate.signal.mel import MelConfig, as_mel_config, mel_basis
from articulate.signal.pitch import semitones_to_hz

# The Hann window's main lobe in power, as a Gaussian of the same area (its equivalent noise bandwidth, 1.5
# bins) and peak: s.d. 1.5 / sqrt(2 pi) bins. Its side lobes (below -31 dB) are left out.
LOBE_VAR_BINS2 = (1.5 / math.sqrt(2.0 * math.pi)) ** 2


class HarmonicComb(nn.Module):
    """``f0_hz [B, T]`` (and the F0's uncertainty, ``sd_semitones [B, T]``) -> ``[B, n_mels, T]``: the power in each
    mel band of a flat-spectrum harmonic series at F0 as the STFT sees it, relative to a flat spectrum of the same
    mean power (about 1 in bands wide enough to hold many harmonics, peaks and troughs where they are resolved).
    With an uncertain F0 it is the comb's expectation over F0 ~ F0 * 2^(N(0, sd^2) / 12): harmonic k moves k times as
    far as the fundamental, so the upper harmonics blur first, which is what a mel-L2-optimal guess does.

    Each harmonic is the window's main lobe at ``k F0 / df`` (``df = sr / n_fft``), a Gaussian of variance
    ``LOBE_VAR_BINS2 + (b sd ln2 / 12)^2`` at bin b; the train of them is summed as its Fourier series (Poisson
    summation, ``terms`` harmonics of the period; the first neglected one is below 1e-4 at F0 >= 60 Hz), and the
    k = 0 and k = -1 members that series includes are taken out.
    """

    def __init__(self, mel: MelConfig | dict | None = None, terms: int = 12):
        super().__init__()
        cfg = as_mel_config(mel)
        self.bin_hz = float(cfg.sr) / float(cfg.n_fft)
        self.terms = int(terms)
        basis = torch.from_numpy(mel_basis(cfg)).float()  # [n_mels, n_freqs]
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("band_power", basis.sum(dim=1), persistent=False)
        self.register_buffer("bins", torch.arange(cfg.n_freqs, dtype=torch.float32), persistent=False)

    def spectrum(self, f0_hz: torch.Tensor, sd_semitones: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., n_freqs]``: the relative power spectrum at each F0 of ``f0_hz [...]``."""
        period = (f0_hz.float().clamp_min(20.0) / self.bin_hz)[..., None]  # harmonic spacing in bins
        b = self.bins
        var = torch.full_like(period, LOBE_VAR_BINS2)
        if sd_semitones is not None:
            var = var + (b * sd_semitones.float()[..., None] * (math.log(2.0) / 12.0)) ** 2
        phase = 2.0 * math.pi * b / period
        decay = -2.0 * math.pi ** 2 * var / period ** 2
        comb = torch.ones_like(phase)
        for m in range(1, self.terms + 1):
            comb = comb + 2.0 * torch.exp(decay * m * m) * torch.cos(phase * m)
        norm = math.sqrt(2.0 * math.pi * LOBE_VAR_BINS2)
        for centre in (b, b + period):  # near bin 0 the pitch term of the variance vanishes: the lobe's own
            comb = comb - period * torch.exp(-centre ** 2 / (2.0 * LOBE_VAR_BINS2)) / norm
        return comb.clamp_min(0.0)

    def forward(self, f0_hz: torch.Tensor, sd_semitones: torch.Tensor | None = None) -> torch.Tensor:
        band = self.spectrum(f0_hz, sd_semitones) @ self.basis.T  # [B, T, n_mels]
        return (band / self.band_power).transpose(1, 2)


class HarmonicFrameTranslator(FrameTranslator):
    """The frame translator (:class:`FrameTranslator`, the same arguments) with the source-filter decoder above.

    Args:
        mel: the target mel's transform (linked from the data; the comb is drawn through its filterbank).
        pitch_center, pitch_scale: the pitch head's output ``z`` maps to ``center + scale * z`` semitones re 100 Hz
            (the defaults span 80-260 Hz, adult voices, at |z| < 1.5).
        depth_init: the harmonic depth's start value (near 0: the decoder starts as the frame translator).
        pitch_uncertainty: the pitch head also predicts its own error's s.d. (``sd_init`` semitones at the start,
            within ``sd_range``; trained by the Gaussian NLL of :class:`~articulate.networks.mri2audio.losses.PitchLoss`),
            and the comb is the expected one under it (:class:`HarmonicComb`); False draws a sharp comb at the
            predicted F0.
        the rest: as :class:`FrameTranslator`.

    Its :class:`TranslatorOutput` carries ``pitch [B, n_frames]``, the predicted F0 in semitones re 100 Hz, and
    ``pitch_sd`` (None without ``pitch_uncertainty``). ``forward(x, pitch=...)`` draws a sharp comb at a given F0
    instead (semitones ``[B, n_frames]``): with the F0 tracked from the true audio, what the decoder makes of a
    perfect pitch reading (the pitch head's ceiling).
    """

    draws_given_pitch = True

    def __init__(self, in_channels: int = 1, frame_channels: Sequence[int] = (16, 32, 64, 64), frame_grid: int = 4,
                 temporal_channels: int = 128, temporal_layers: int = 2, temporal_kernel: int = 3,
                 utterance_channels: int = 14, subject_channels: int = 100, n_mels: int = 64, n_frames: int = 64,
                 init_logvar: float | None = -6.0, logvar_limit: float = 10.0, norm: Literal["none", "group"] = "none",
                 mel: MelConfig | None = None, pitch_center: float = 7.0, pitch_scale: float = 6.0,
                 depth_init: float = 0.05, pitch_uncertainty: bool = True, sd_init: float = 3.0,
                 sd_range: Sequence[float] = (0.05, 12.0), motion_input: bool = False):
        super().__init__(in_channels, frame_channels, frame_grid, temporal_channels, temporal_layers, temporal_kernel,
                         utterance_channels, subject_channels, n_mels, n_frames, init_logvar, logvar_limit, norm,
                         motion_input)
        self.mel_config = as_mel_config(mel)
        if self.mel_config.n_mels != self.n_mels:
            raise ValueError(f"HarmonicFrameTranslator: n_mels {n_mels} differs from the mel's {self.mel_config.n_mels}")
        if not 0.0 < depth_init < 1.0 or pitch_scale <= 0:
            raise ValueError(f"depth_init must be in (0, 1) and pitch_scale positive, got {depth_init}, {pitch_scale}")
        lo, hi = (float(v) for v in sd_range)
        if not 0.0 < lo <= float(sd_init) <= hi:
            raise ValueError(f"sd_init {sd_init} must lie within sd_range ({lo}, {hi}), both positive")
        self.pitch_center, self.pitch_scale = float(pitch_center), float(pitch_scale)
        self.pitch_uncertainty = bool(pitch_uncertainty)
        self.log_sd_range = (math.log(lo), math.log(hi))
        self.db_span = float(self.mel_config.db_max - self.mel_config.db_min)
        c = temporal_channels
        self.pitch_out = nn.Conv1d(c, 2 if self.pitch_uncertainty else 1, 1)  # mean (, log s.d.)
        self.depth_out = nn.Conv1d(c, n_mels, 1)
        nn.init.zeros_(self.pitch_out.weight)
        nn.init.zeros_(self.pitch_out.bias)
        if self.pitch_uncertainty:
            with torch.no_grad():
                self.pitch_out.bias[1] = math.log(float(sd_init))
        nn.init.zeros_(self.depth_out.weight)
        nn.init.constant_(self.depth_out.bias, float(torch.logit(torch.tensor(depth_init))))
        self.comb = HarmonicComb(self.mel_config)

    def forward(self, x: torch.Tensor, pitch: torch.Tensor | None = None) -> TranslatorOutput:
        h, mu, logvar, subject = self.mel_features(x)
        envelope = torch.sigmoid(self.mel_out(h))  # [B, n_mels, n_frames]
        head = self.pitch_out(h)
        predicted = self.pitch_center + self.pitch_scale * head[:, 0]  # [B, n_frames] semitones
        sd = torch.exp(head[:, 1].clamp(*self.log_sd_range)) if self.pitch_uncertainty else None
        depth = torch.sigmoid(self.depth_out(h))
        if pitch is None:
            comb = self.comb(semitones_to_hz(predicted.detach()), None if sd is None else sd.detach())
        else:
            comb = self.comb(semitones_to_hz(pitch.to(predicted)))
        comb = comb.to(envelope)
        gain = 10.0 * torch.log10((depth * comb + 1.0 - depth).clamp_min(1e-6)) / self.db_span
        mel = (envelope + gain).clamp(0.0, 1.0)[:, None]
        return TranslatorOutput(mel, mu, logvar, subject, predicted, sd)
