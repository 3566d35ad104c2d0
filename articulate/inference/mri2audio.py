"""mri2audio inference: tagged-MRI sequence -> unit-scale mel -> waveform, rebuilt from a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from articulate.inference.base import Predictor
from articulate.signal.griffin_lim import resolve_griffin_lim, unit_mel_to_audio
from articulate.signal.mel import MelConfig, as_mel_config
from articulate.transforms.mri import prepare_mri

DEFAULT_INPUT_SHAPE = (26, 128, 128)
DEFAULT_PERCENTILES = (0.5, 99.5)


class Mri2AudioSynthesizer(Predictor):
    """MRI ``[B, 1, T, H, W]`` in [0, 1] -> mel ``[B, 1, n_mels, frames]`` (unit scale) -> waveform.

    Networks (named as in the LightningModules, so their checkpoints load as they are): either the
    translator F with the optional attention network A (A's attentive frames x' feed F), or one ``network``
    mapping MRI to mel (the Lip2AudSpec baseline).

    Args:
        mel: the mel transform and unit scale the model was trained on (also the Griffin-Lim inverse).
        input_shape: the (frames, height, width) grid the model was trained on.
        intensity_percentiles: MRI intensity percentiles mapped to 0 and 1 (as the DataModule did).
        griffin_lim: "librosa" (the paper's ``mel_to_audio``; the default, so tables compare like with
            like), "torch" (batched, GPU) or "auto"; ``griffin_lim_iters`` iterations.
    """

    direction = "mri2audio"

    def __init__(self, translator: nn.Module | None = None, attention: nn.Module | None = None,
                 network: nn.Module | None = None, mel: MelConfig | dict | None = None,
                 input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
                 intensity_percentiles: Sequence[float] = DEFAULT_PERCENTILES,
                 griffin_lim: str = "librosa", griffin_lim_iters: int = 32):
        super().__init__()
        if (translator is None) == (network is None):
            raise ValueError("give either the translator (with an optional attention network) or one network")
        if network is not None and attention is not None:
            raise ValueError("the attention network feeds the translator; a plain network takes no attention")
        self.translator, self.attention, self.network = translator, attention, network
        self.mel_config = as_mel_config(mel)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.intensity_percentiles = tuple(float(v) for v in intensity_percentiles)
        resolve_griffin_lim(griffin_lim)  # validate early
        self.griffin_lim, self.griffin_lim_iters = griffin_lim, int(griffin_lim_iters)

    @property
    def sample_rate(self) -> int:
        return int(self.mel_config.sr)

    @property
    def has_attention(self) -> bool:
        return self.attention is not None

    def prepare(self, frames: np.ndarray) -> torch.Tensor:
        """A sequence ``[T, H, W]`` as read -> ``[T', H', W']`` on the model's grid in [0, 1] (the DataModule's scaling)."""
        t, h, w = self.input_shape
        if h != w:
            raise ValueError(f"the model's frame grid {h}x{w} is not square")
        return prepare_mri(frames, t, h, self.intensity_percentiles)

    def predict(self, mri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[B, 1, T, H, W]`` -> (unit mel ``[B, 1, n_mels, frames]``, attention masks ``[B, 1, T, H, W]`` or None)."""
        if self.network is not None:
            return self.network(mri), None
        masks = None
        x = mri
        if self.attention is not None:
            x, masks = self.attention(mri)
        return self.translator(x).mel, masks

    def forward(self, mri: torch.Tensor) -> torch.Tensor:
        return self.predict(mri)[0]

    def waveform(self, mel_unit: torch.Tensor, length: int | None = None, method: str | None = None) -> torch.Tensor:
        """Griffin-Lim of unit mels -> ``[B, L]`` in [-1, 1] at :attr:`sample_rate`."""
        return unit_mel_to_audio(mel_unit, self.mel_config, method or self.griffin_lim, self.griffin_lim_iters, length)

    def griffin_lim_method(self, device: torch.device | str | None = None) -> str:
        return resolve_griffin_lim(self.griffin_lim, device or self.device)

    @torch.no_grad()
    def synthesize(self, frames: np.ndarray, method: str | None = None) -> dict[str, Any]:
        """One sequence as read (``[T, H, W]``) -> ``{"mel", "masks", "audio", "sample_rate"}`` (numpy)."""
        x = self.prepare(frames).to(self.device)[None, None]
        mel, masks = self.predict(x)
        wav = self.waveform(mel, method=method)
        return {"mel": mel[0, 0].float().cpu().numpy(), "masks": None if masks is None else masks[0, 0].float().cpu().numpy(),
                "audio": wav[0].cpu().numpy(), "sample_rate": self.sample_rate}
