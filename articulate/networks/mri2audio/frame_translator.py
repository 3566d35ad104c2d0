"""A translator F with a time axis from the MRI frames to the mel frames (ours, not the paper's).

The paper's F pools the sequence's time axis away (five 3D max-pools: 26 frames -> 1) and decodes the
whole spectrogram from one 4 x 4 code, so *when* each sound happens has to be learnt through the
channels, from one example per recording. On the QUICK phantom that timing is much of what the paper's F
misses: its predictions warped onto each held-out target's timeline (DTW, ``test/corr2d_warped``) score far
higher than unwarped.

This F reads each MRI frame with one 2D encoder shared over time (every frame of every recording is a
training example for it), mixes neighbouring frames with 1D convolutions over time, reads the result at
the mel frames' times (linear interpolation between MRI frame centres) and decodes each mel frame's bands
with 1D convolutions over time. The utterance code u (mean and log-variance, for the pair-wise KL of the
paper's training) and the subject code s are pooled over time and broadcast back to every frame, so the
paper's losses and the LightningModule's routing apply unchanged.

Without a normalisation it can sit at the all-utterance mean for most of the run, like the paper's F; with
``norm="group"`` (configs/mri2audio/frame_translator.yaml) it leaves it early at every seed and scores above the
paper's F. Figures: docs/experiments/mri2audio.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from articulate.networks.layout import channels_last
from articulate.networks.mri2audio.translator import TranslatorOutput


class FrameTranslator(nn.Module):
    """F: ``x [B, 1, T, H, W]`` in [0, 1] -> :class:`TranslatorOutput` with ``mel [B, 1, n_mels, n_frames]``.

    Args:
        frame_channels: widths of the stride-2 2D convolutions of the per-frame encoder (kernel 4); its last
            map is average-pooled to ``frame_grid`` x ``frame_grid`` and flattened.
        temporal_channels: width of the 1D convolutions over time (encoder and decoder).
        temporal_layers: 1D convolutions (kernel ``temporal_kernel``, ReLU) over the MRI frames, and as many
            over the mel frames before the output layer.
        utterance_channels, subject_channels: sizes of u (mean and log-variance each) and s.
        n_mels, n_frames: the output mel's shape (the DataModule's: 64 x 64).
        init_logvar: start value of u's log-variance (its weights zeroed; see HeterogeneousTranslator).
        logvar_limit: the log-variance is clamped to ``[-limit, limit]``.
        norm: ``"group"`` puts a GroupNorm (8 channels a group) after every hidden convolution of the frame
            encoder and of the temporal layers (its statistics span the sequence, so a mel frame then also
            depends on them); ``"none"`` (default) has none.
        motion_input: also give the frame encoder each frame's difference from the sequence's mean frame, scaled
            to unit RMS over the sequence, as a second channel: what moves, without the speaker's static anatomy.

    :meth:`init_output_bias` starts the output at each band's mean training level (the LightningModule calls it
    at the start of a fresh fit).
    """

    def __init__(self, in_channels: int = 1, frame_channels: Sequence[int] = (16, 32, 64, 64), frame_grid: int = 4,
                 temporal_channels: int = 128, temporal_layers: int = 2, temporal_kernel: int = 3,
                 utterance_channels: int = 14, subject_channels: int = 100, n_mels: int = 64, n_frames: int = 64,
                 init_logvar: float | None = -6.0, logvar_limit: float = 10.0, norm: Literal["none", "group"] = "none",
                 motion_input: bool = False):
        super().__init__()
        frame_channels = list(frame_channels)
        if not frame_channels or temporal_layers < 0 or temporal_kernel % 2 == 0:
            raise ValueError("frame_channels must list a layer, temporal_layers be >= 0 and temporal_kernel odd")
        if logvar_limit <= 0:
            raise ValueError(f"logvar_limit must be positive, got {logvar_limit}")
        self.logvar_limit = float(logvar_limit)
        if norm not in ("none", "group"):
            raise ValueError(f"norm must be 'none' or 'group', got {norm!r}")

        def gn(ch: int) -> nn.Module:
            return nn.GroupNorm(max(1, ch // 8), ch) if norm == "group" else nn.Identity()
        self.frame_grid, self.n_mels, self.n_frames = int(frame_grid), int(n_mels), int(n_frames)
        self.utterance_channels = int(utterance_channels)
        self.motion_input = bool(motion_input)
        widths = [in_channels * (2 if self.motion_input else 1), *frame_channels]
        self.frame_encoder = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.frame_norms = nn.ModuleList(gn(b) for b in widths[1:])
        c = temporal_channels
        self.frame_proj = nn.Linear(frame_channels[-1] * self.frame_grid ** 2, c)
        pad = temporal_kernel // 2
        self.temporal = nn.ModuleList(nn.Conv1d(c, c, temporal_kernel, padding=pad) for _ in range(temporal_layers))
        self.temporal_norms = nn.ModuleList(gn(c) for _ in range(temporal_layers))
        self.codes = nn.Linear(c, 2 * utterance_channels + subject_channels)
        self.mel_in = nn.Conv1d(c + utterance_channels + subject_channels, c, 1)
        self.mel_layers = nn.ModuleList(nn.Conv1d(c, c, temporal_kernel, padding=pad) for _ in range(temporal_layers))
        self.mel_norms = nn.ModuleList(gn(c) for _ in range(temporal_layers))
        self.mel_out = nn.Conv1d(c, n_mels, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if init_logvar is not None:
            if not -logvar_limit <= float(init_logvar) <= logvar_limit:
                raise ValueError(f"init_logvar must be within [-logvar_limit, logvar_limit], got {init_logvar}")
            m = utterance_channels
            with torch.no_grad():
                self.codes.weight[m:2 * m].zero_()
                self.codes.bias[m:2 * m].fill_(float(init_logvar))

    @property
    def out_size(self) -> int:
        return self.n_frames

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, T, H, W]`` -> per-MRI-frame features ``[B, temporal_channels, T]``."""
        if x.dim() != 5:
            raise ValueError(f"expected [B, C, T, H, W], got shape {tuple(x.shape)}")
        if self.motion_input:
            d = x - x.mean(dim=2, keepdim=True)
            x = torch.cat([x, d / d.square().mean(dim=(2, 3, 4), keepdim=True).sqrt().clamp_min(1e-4)], dim=1)
        b, c, t, h, w = x.shape
        f = channels_last(x.transpose(1, 2).reshape(b * t, c, h, w))
        for conv, norm in zip(self.frame_encoder, self.frame_norms):
            f = F.relu(norm(conv(f)))
        f = F.adaptive_avg_pool2d(f, self.frame_grid).flatten(1)
        f = F.relu(self.frame_proj(f)).reshape(b, t, -1).transpose(1, 2)
        for conv, norm in zip(self.temporal, self.temporal_norms):
            f = F.relu(norm(conv(f))) + f  # residual: each layer widens the time context by kernel - 1 frames
        return f

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> ``(mu, logvar, subject)`` ``[B, ., 1, 1]`` (codes pooled over time) and the frame features."""
        f = self.frame_features(x)
        codes = self.codes(f.mean(dim=2))
        m = self.utterance_channels
        mu, logvar, subject = codes[:, :m], codes[:, m:2 * m].clamp(-self.logvar_limit, self.logvar_limit), codes[:, 2 * m:]
        return mu[..., None, None], logvar[..., None, None], subject[..., None, None], f

    def sample_noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn_like(like)

    @torch.no_grad()
    def init_output_bias(self, mean_output: torch.Tensor) -> None:
        """Start from the mean mel ``[1, n_mels, frames]``: the output layer's weights 0, each band's bias the logit
        of the band's mean over time."""
        p = mean_output.to(self.mel_out.bias).reshape(self.n_mels, -1).clamp(1e-3, 1 - 1e-3)
        band = p.mean(dim=1)
        self.mel_out.bias.copy_(torch.log(band) - torch.log1p(-band))
        self.mel_out.weight.zero_()

    def mel_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` -> features at the mel frames ``[B, temporal_channels, n_frames]`` (before the output layer) and the
        codes ``(mu, logvar, subject)``."""
        mu, logvar, subject, f = self.encode(x)
        u = mu + torch.exp(0.5 * logvar) * self.sample_noise(mu) if self.training else mu
        # MRI frame t covers [t, t + 1) / T of the crop, mel frame j sits at ~j / n_frames: linear reading
        # between frame centres (align_corners=False) puts each mel frame at its moment of the sequence
        h = F.interpolate(f, size=self.n_frames, mode="linear", align_corners=False)
        g = torch.cat([u, subject], dim=1).flatten(2).expand(-1, -1, self.n_frames)
        h = F.relu(self.mel_in(torch.cat([h, g], dim=1)))
        for conv, norm in zip(self.mel_layers, self.mel_norms):
            h = F.relu(norm(conv(h))) + h
        return h, mu, logvar, subject

    def forward(self, x: torch.Tensor) -> TranslatorOutput:
        h, mu, logvar, subject = self.mel_features(x)
        mel = torch.sigmoid(self.mel_out(h))[:, None]  # [B, 1, n_mels, n_frames]
        return TranslatorOutput(mel, mu, logvar, subject)
