"""Mel spectrograms: librosa is the reference, a batched torch module matches it for training.

The mri2audio translator predicts a 64 x 64 mel spectrogram of a 21,000-sample crop of 22,050 Hz
audio, squashed to [0, 1] (its output is a sigmoid). ``MelConfig`` holds every parameter of that
transform in one place so that the DataModule (targets), the metrics (Corr2D) and Griffin-Lim
(waveforms for PESQ) all use the same one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import librosa
import numpy as np
import torch
from torch import nn

from articulate.utils.settings import as_settings

PadMode = Literal["constant", "edge", "reflect"]

# librosa pad modes -> torch.nn.functional.pad modes (the ones both libraries support).
_TORCH_PAD = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}


@dataclass(frozen=True)
class MelConfig:
    """Parameters of the power mel spectrogram and of its fixed [0, 1] scale.

    Defaults are the mri2audio setting. The paper gives only the 64 x 64 mel size, 21,000-sample
    crops and librosa's ``melspectrogram``; with ``center=True`` a 64-frame mel of 21,000 samples
    needs a hop of 329-333, we take 330 (``frames(21000) == 64``). ``n_fft=1024`` (46 ms) is our
    choice: long enough to resolve the pitch harmonics of adult voices, short enough that a 330-hop
    frame overlaps its neighbours by ~68 %. ``pad_mode='constant'`` is librosa >= 0.10's default.

    The unit scale maps ``10*log10(power)`` (ref = 1.0, absolute, no per-clip max) linearly from
    ``[db_min, db_max]`` to ``[0, 1]`` and clips. It is fixed, not per-utterance, so predicted mels
    invert to waveforms with their level, and loudness is comparable across recordings.
    ``db_max = +40``: with these parameters a full-scale sine peaks at +31.8 dB in its mel band
    (100 Hz; +22 dB at 10 kHz), full-scale white noise at +15 dB and peak-normalised speech at
    about +26 dB, so nothing within [-1, 1] clips (the fundamental of a full-scale square wave, the
    most a band can hold, is +2.1 dB above the sine). ``db_min = -100``: 16-bit quantisation noise
    lies at -89 dB (median band) down to -102 dB, so -100 dB is the level below which a 16-bit
    recording holds nothing but digital silence.
    """

    sr: int = 22050
    n_fft: int = 1024
    hop_length: int = 330
    win_length: int | None = None
    window: str = "hann"
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    center: bool = True
    pad_mode: PadMode = "constant"
    power: float = 2.0
    htk: bool = False
    norm: Literal["slaney"] | None = "slaney"
    db_min: float = -100.0
    db_max: float = 40.0

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"MelConfig: sr, n_fft, hop_length and n_mels must be positive ({self})")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"MelConfig: win_length must be in (0, n_fft], got {self.win_length}")
        if self.fmax is not None and self.fmax > self.sr / 2:
            raise ValueError(f"MelConfig: fmax={self.fmax} is above the Nyquist frequency {self.sr / 2}")
        if self.pad_mode not in _TORCH_PAD:
            raise ValueError(f"MelConfig: pad_mode must be one of {sorted(_TORCH_PAD)}, got {self.pad_mode!r}")
        if not self.db_max > self.db_min:
            raise ValueError(f"MelConfig: db_max ({self.db_max}) must be above db_min ({self.db_min})")
        if self.power <= 0:
            raise ValueError(f"MelConfig: power must be positive, got {self.power}")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def win(self) -> int:
        return self.n_fft if self.win_length is None else self.win_length

    def frames(self, n_samples: int) -> int:
        """Number of STFT frames librosa gives for ``n_samples`` samples."""
        if self.center:
            return 1 + n_samples // self.hop_length
        if n_samples < self.n_fft:
            raise ValueError(f"{n_samples} samples are fewer than n_fft={self.n_fft} with center=False")
        return 1 + (n_samples - self.n_fft) // self.hop_length

    def samples(self, n_frames: int) -> int:
        """Signal length that an inverse STFT of ``n_frames`` frames gives (librosa istft, no ``length``)."""
        if self.center:
            return self.hop_length * (n_frames - 1)
        return self.n_fft + self.hop_length * (n_frames - 1)

    def librosa_kwargs(self) -> dict:
        """Keyword arguments of ``librosa.feature.melspectrogram`` / ``inverse.mel_to_audio``."""
        return dict(
            sr=self.sr, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
            window=self.window, center=self.center, pad_mode=self.pad_mode, power=self.power,
            n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax, htk=self.htk, norm=self.norm,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def as_mel_config(cfg: MelConfig | dict | None) -> MelConfig:
    """Accept a MelConfig, a dict of its fields (YAML) or None (defaults)."""
    return as_settings(MelConfig, cfg)


def mel_basis(cfg: MelConfig) -> np.ndarray:
    """``librosa.filters.mel`` for ``cfg``: float32 ``[n_mels, n_fft//2+1]`` (librosa's own dtype,
    which ``melspectrogram`` uses whatever the signal's precision)."""
    return librosa.filters.mel(
        sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=cfg.htk, norm=cfg.norm
    )


def stft_window(cfg: MelConfig) -> np.ndarray:
    """librosa's analysis window: periodic ``get_window`` of ``win_length`` centred in ``n_fft``."""
    win = librosa.filters.get_window(cfg.window, cfg.win, fftbins=True)
    return librosa.util.pad_center(win, size=cfg.n_fft)


def mel_librosa(wav: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Reference power mel ``[..., n_mels, T]`` of ``wav`` ``[..., L]`` with librosa."""
    wav = np.asarray(wav)
    if not np.issubdtype(wav.dtype, np.floating):
        raise TypeError(f"mel_librosa expects float audio, got {wav.dtype}")
    return librosa.feature.melspectrogram(y=wav, **cfg.librosa_kwargs())


class MelSpectrogram(nn.Module):
    """Batched power mel spectrogram ``[B, L] -> [B, n_mels, T]`` that matches librosa.

    Same window, padding, STFT and mel basis as ``librosa.feature.melspectrogram`` (the basis is
    ``librosa.filters.mel`` itself, stored as a buffer), computed with ``torch.stft`` so it runs
    on the GPU and inside a DataLoader worker. Output dtype follows the input (float32/float64;
    half-precision input is computed in float32 and cast back).
    """

    def __init__(self, cfg: MelConfig | dict | None = None):
        super().__init__()
        self.cfg = as_mel_config(cfg)
        # float64 buffers: cast to the signal's dtype in forward, so float32 and float64 both
        # see librosa's float32 basis values exactly.
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis(self.cfg).astype(np.float64)), persistent=False)
        self.register_buffer("window", torch.from_numpy(stft_window(self.cfg).astype(np.float64)), persistent=False)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """``|STFT|**power`` ``[B, n_fft//2+1, T]`` (librosa ``_spectrogram``)."""
        cfg = self.cfg
        if not torch.is_floating_point(wav):
            raise TypeError(f"MelSpectrogram expects float audio, got {wav.dtype}")
        if wav.dtype not in (torch.float32, torch.float64):
            wav = wav.float()  # torch.stft has no half-precision CPU kernel; precision matters here anyway
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav[None]
        lead = wav.shape[:-1]
        wav = wav.reshape(-1, wav.shape[-1])
        if cfg.center:
            pad = cfg.n_fft // 2
            mode = _TORCH_PAD[cfg.pad_mode]
            # F.pad's reflect/replicate want a channel dim: [N, 1, L].
            wav = torch.nn.functional.pad(wav[:, None], (pad, pad), mode=mode)[:, 0]
        if wav.shape[-1] < cfg.n_fft:
            raise ValueError(f"signal of {wav.shape[-1]} samples is shorter than n_fft={cfg.n_fft}")
        spec = torch.stft(
            wav, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
            window=self.window.to(wav.dtype), center=False, return_complex=True,
        )
        mag2 = spec.real.square() + spec.imag.square()
        out = mag2 if cfg.power == 2.0 else mag2.pow(cfg.power / 2.0)
        out = out.reshape(*lead, *out.shape[-2:])
        return out[0] if squeeze else out

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(wav)
        # Under autocast a float32 matmul could run in half precision: the mel keeps float32.
        with torch.autocast(device_type=spec.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis.to(spec.dtype), spec)
        return mel if wav.dtype in (torch.float32, torch.float64) else mel.to(wav.dtype)


def power_to_unit(mel, cfg: MelConfig):
    """Power mel -> [0, 1]: ``(10 log10(mel) - db_min) / (db_max - db_min)``, clipped (numpy or torch)."""
    floor = 10.0 ** (cfg.db_min / 10.0)
    span = cfg.db_max - cfg.db_min
    if isinstance(mel, torch.Tensor):
        db = 10.0 * torch.log10(mel.clamp_min(floor))
        return ((db - cfg.db_min) / span).clamp(0.0, 1.0)
    mel = np.asarray(mel)
    db = 10.0 * np.log10(np.maximum(mel, floor))
    return np.clip((db - cfg.db_min) / span, 0.0, 1.0).astype(mel.dtype if np.issubdtype(mel.dtype, np.floating) else np.float32)


def unit_to_power(unit, cfg: MelConfig):
    """Inverse of ``power_to_unit`` (exact inside the range; 0 maps to the ``db_min`` floor power)."""
    span = cfg.db_max - cfg.db_min
    if isinstance(unit, torch.Tensor):
        return torch.pow(10.0, (unit.clamp(0.0, 1.0) * span + cfg.db_min) / 10.0).to(unit.dtype)
    unit = np.asarray(unit)
    out = np.power(10.0, (np.clip(unit, 0.0, 1.0) * span + cfg.db_min) / 10.0)
    return out.astype(unit.dtype if np.issubdtype(unit.dtype, np.floating) else np.float32)


def power_to_db(mel, cfg: MelConfig):
    """``10 log10`` of the power mel, floored at ``db_min`` (numpy or torch)."""
    floor = 10.0 ** (cfg.db_min / 10.0)
    if isinstance(mel, torch.Tensor):
        return 10.0 * torch.log10(mel.clamp_min(floor))
    return 10.0 * np.log10(np.maximum(np.asarray(mel), floor))
