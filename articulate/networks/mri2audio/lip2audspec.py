"""Lip2AudSpec (Akbari et al., ICASSP 2018) adapted to tagged MRI: the paper's comparison method.

The original (public Keras code) reads a slice of lip-video frames with 3D convolutions, an LSTM
and fully connected layers and predicts the spectrogram of that slice. Adapted to a 26-frame
tagged-MRI sequence and its single 64 x 64 mel, as the seed paper did ("a temporal window size
of 5 ... relies on RNN for long-term temporal modelling"):

1. Per-frame channels: the frame x_t, its first difference x_t - x_{t-1} and second difference
   (backward differences over the whole sequence; both are 0 at frame 1).
2. Slices of ``window`` = 5 consecutive frames every ``window_stride`` frames (26 frames,
   stride 1: 22 slices; no frames are invented at the ends).
3. Each slice goes through 7 Conv3D layers (32, 32, 32, 64, 64, 128, 128; kernel 3; batch norm;
   LeakyReLU(0.3), Keras' default slope) with 4 spatial max-pools (after layers 1, 2, 3, 5:
   128 -> 8 pixels) and dropout 0.25 (after layers 3, 5, 7 as in the original). The last two
   layers have no temporal padding, so a 5-frame slice ends as one 8 x 8 x 128 feature map.
4. LSTM(512) over the slices; its last output -> batch norm, ELU, dropout 0.25 -> dense 2048
   (batch norm, ELU, dropout 0.4) -> dense 64 * 64 with a sigmoid.

About 28 M parameters at 128 x 128 (the LSTM's 8192-wide input is 18 M of them).

Memory: in training the CNN sees batch x slices samples at full resolution (704 at the paper's size with
pairs): the standard modules keep ~37 GB of activations for the backward pass. ``memory_chunk`` runs each
conv block memory-lean (:mod:`articulate.networks.mri2audio.lean_cnn`: chunks of that many samples, the
block's input kept, the rest recomputed, batch-norm statistics still over the whole batch), the same
values for ~1.7x the CNN's compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from articulate.networks.mri2audio.lean_cnn import lean_sequential


def temporal_features(x: torch.Tensor) -> torch.Tensor:
    """``[B, 1, T, H, W]`` -> ``[B, 3, T, H, W]``: frame, 1st and 2nd backward differences (0 at t = 1)."""
    if x.shape[1] != 1:
        raise ValueError(f"expected one image channel, got {x.shape[1]}")
    d1 = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
    d2 = torch.cat([torch.zeros_like(d1[:, :, :1]), d1[:, :, 1:] - d1[:, :, :-1]], dim=2)
    return torch.cat([x, d1, d2], dim=1)


class Lip2AudSpecNet(nn.Module):
    """``x [B, 1, T, H, W]`` -> mel ``[B, 1, *out_shape]`` in (0, 1).

    Args:
        image_size: (H, W) of the input frames; fixes the LSTM input width.
        window, window_stride: frames per slice and the step between slices.
        conv_channels: widths of the Conv3D layers.
        pool_after / dropout_after / temporal_valid: 0-based indices of the conv layers followed
            by a (1, 2, 2) max-pool / by dropout, and of those without temporal padding.
        memory_chunk: in training, run the CNN memory-lean in chunks of this many slices (None: the
            standard modules, all slices at once); the same values (see the module docstring).
    """

    def __init__(
        self,
        image_size: Sequence[int] = (128, 128),
        window: int = 5,
        window_stride: int = 1,
        conv_channels: Sequence[int] = (32, 32, 32, 64, 64, 128, 128),
        pool_after: Sequence[int] = (0, 1, 2, 4),
        dropout_after: Sequence[int] = (2, 4, 6),
        temporal_valid: Sequence[int] = (5, 6),
        negative_slope: float = 0.3,
        conv_dropout: float = 0.25,
        lstm_hidden: int = 512,
        dense: int = 2048,
        dense_dropout: float = 0.4,
        out_shape: Sequence[int] = (64, 64),
        memory_chunk: int | None = None,
    ):
        super().__init__()
        if memory_chunk is not None and int(memory_chunk) < 1:
            raise ValueError(f"memory_chunk must be a positive number of slices or None, got {memory_chunk}")
        self.memory_chunk = None if memory_chunk is None else int(memory_chunk)
        conv_channels = list(conv_channels)
        h, w = (int(s) for s in image_size)
        self.window, self.window_stride = int(window), int(window_stride)
        if self.window < 1 or self.window_stride < 1:
            raise ValueError("window and window_stride must be positive")
        t = self.window - 2 * len(set(temporal_valid))
        if t < 1:
            raise ValueError(f"a {window}-frame slice cannot pass {len(set(temporal_valid))} unpadded temporal convolutions")
        scale = 2 ** len(set(pool_after))
        if h % scale or w % scale:
            raise ValueError(f"image_size {h}x{w} must be divisible by {scale} (2 ** number of pools)")
        self.image_size = (h, w)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.negative_slope = negative_slope

        layers: list[nn.Module] = []
        widths = [3, *conv_channels]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            pad_t = 0 if i in temporal_valid else 1
            layers += [nn.Conv3d(a, b, kernel_size=3, padding=(pad_t, 1, 1)), nn.BatchNorm3d(b), nn.LeakyReLU(negative_slope)]
            if i in pool_after:
                layers.append(nn.MaxPool3d((1, 2, 2)))
            if i in dropout_after:
                layers.append(nn.Dropout(conv_dropout))
        self.cnn = nn.Sequential(*layers)
        self.feature_size = conv_channels[-1] * t * (h // scale) * (w // scale)
        self.lstm = nn.LSTM(self.feature_size, lstm_hidden, batch_first=True)
        self.head = nn.Sequential(
            nn.BatchNorm1d(lstm_hidden),
            nn.ELU(),
            nn.Dropout(conv_dropout),
            nn.Linear(lstm_hidden, dense),
            nn.BatchNorm1d(dense),
            nn.ELU(),
            nn.Dropout(dense_dropout),
            nn.Linear(dense, self.out_shape[0] * self.out_shape[1]),
        )

    def slices(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, H, W]`` -> ``[B, S, 3, window, H, W]`` windows of the 3-channel features."""
        if x.dim() != 5:
            raise ValueError(f"expected [B, 1, T, H, W], got shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"frames are {tuple(x.shape[-2:])}, this network was built for {self.image_size}")
        if x.shape[2] < self.window:
            raise ValueError(f"{x.shape[2]} frames are fewer than the {self.window}-frame window")
        feats = temporal_features(x)  # [B, 3, T, H, W]
        win = feats.unfold(2, self.window, self.window_stride)  # [B, 3, S, H, W, window]
        return win.permute(0, 2, 1, 5, 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        win = self.slices(x)
        b, s = win.shape[:2]
        slices = win.reshape(b * s, *win.shape[2:])
        if self.memory_chunk is not None and self.training and torch.is_grad_enabled():
            f = lean_sequential(self.cnn, slices, self.memory_chunk)
        else:
            f = self.cnn(slices)
        f = f.reshape(b, s, -1)
        out, _ = self.lstm(f)
        y = self.head(out[:, -1])
        return torch.sigmoid(y).reshape(b, 1, *self.out_shape)
