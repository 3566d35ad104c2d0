"""Condition encoders of the wav2uti model: speech -> frame-aligned features, transcript -> token features.

Audio encoders share one contract so the LightningModule, the feature cache and ``synthesize-uti``
treat them alike:

* ``sample_rate``: the rate the waveform must have (callers resample);
* ``dim``: feature size;
* ``frozen``: True when the encoder has no trainable weights, so its outputs can be cached on disk;
* ``forward(wav [B, L], fps, n_frames=None) -> [B, n_frames, dim]``: one feature vector per video
  frame. Video frame ``i`` covers ``[i/fps, (i+1)/fps)`` of the waveform; its feature is the
  encoder output linearly interpolated at the frame's centre ``(i + 0.5)/fps``, using each
  encoder frame's true centre time (its analysis window / receptive field), so the condition is
  aligned with the video whatever the encoder's own frame rate.
* ``cache_key() -> str``: everything that determines the output (class, configuration, weights).

Speech context (``condition_context`` c, in video frames): the tongue at frame t depends on the speech
around it (coarticulation, the acoustic-articulatory lag), also across a clip's edges. A model with
c > 0 reads the features of frames ``[s - c, s + T + c)`` for the clip ``[s, s + T)``: they are computed
on the utterance padded with c frames of silence on each side (:func:`pad_context`), so a clip at the
start of an utterance sees silence before it, and the same utterance gives the same features in a clip
and in a long-form window.

Text encoders: ``forward(texts: list[str]) -> (feats [B, L, dim], mask [B, L] bool, True = token)``.
An empty transcript gives an all-False mask row (the fusion then treats it as "no text").

Pretrained encoders (wav2vec 2.0, BERT) load through ``transformers``' normal ``from_pretrained``
from a hub id (hub cache) or a local folder; when the weights are not available offline they raise
:class:`articulate.errors.MissingPretrainedError` saying how to get them.
"""

from __future__ import annotations

import hashlib
import json
import math

import torch
import torch.nn.functional as F
from torch import nn

from articulate.errors import MissingPretrainedError

__all__ = [
    "AudioEncoder",
    "TextEncoder",
    "LogMelEncoder",
    "Wav2Vec2Encoder",
    "CharacterTextEncoder",
    "BertTextEncoder",
    "frames_for_duration",
    "context_samples",
    "pad_context",
    "interpolate_to_frames",
    "load_pretrained",
]


def frames_for_duration(n_samples: int, sample_rate: int, fps: float) -> int:
    """Number of video frames covering ``n_samples`` of audio: ``round(duration * fps)``."""
    return int(round(n_samples / sample_rate * fps))


def context_samples(context: int, sample_rate: int, fps: float) -> int:
    """Samples of ``context`` video frames of audio: the silence :func:`pad_context` adds on each side."""
    return int(round(int(context) * sample_rate / fps))


def pad_context(wav, context: int, sample_rate: int, fps: float):
    """Audio ``[..., L]`` (numpy or torch) with ``context`` frames of silence before and after it."""
    p = context_samples(context, sample_rate, fps)
    if p == 0:
        return wav
    if isinstance(wav, torch.Tensor):
        return F.pad(wav, (p, p))
    import numpy as np

    return np.pad(wav, [(0, 0)] * (wav.ndim - 1) + [(p, p)])


def interpolate_to_frames(feats: torch.Tensor, first_center_s: float, step_s: float, n_frames: int, fps: float) -> torch.Tensor:
    """Resample encoder frames ``[B, N, D]`` (frame j centred at ``first_center_s + j*step_s``) to
    video frames ``[B, n_frames, D]`` centred at ``(i + 0.5)/fps``, by linear interpolation in time.

    Times before the first / after the last encoder frame take the edge frame (no extrapolation).
    """
    b, n, d = feats.shape
    if n_frames <= 0:
        return feats.new_zeros(b, 0, d)
    if n == 1:
        return feats.expand(b, n_frames, d).clone()
    t = (torch.arange(n_frames, device=feats.device, dtype=torch.float64) + 0.5) / fps
    pos = ((t - first_center_s) / step_s).clamp(0.0, n - 1.0)
    i0 = pos.floor().long().clamp(max=n - 2)
    w = (pos - i0.to(pos.dtype)).to(feats.dtype)[None, :, None]
    return feats[:, i0] * (1.0 - w) + feats[:, i0 + 1] * w


def _fingerprint(module: nn.Module) -> str:
    """A cheap content hash of a module's weights (names, shapes and two moments per tensor).

    Two different checkpoints saved to the same folder name get different feature-cache keys.
    """
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in module.state_dict().items():
            t = p.detach().double()
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(f"{t.sum().item():.10e},{t.abs().sum().item():.10e}".encode())
    return h.hexdigest()[:16]


def load_pretrained(cls, model: str, what: str, **kwargs):
    """``cls.from_pretrained(model)`` turning "not available offline" into MissingPretrainedError."""
    from pathlib import Path

    looks_local = model.startswith(("/", "./", "../", "~")) or model.count("/") > 1
    if looks_local and not Path(model).expanduser().exists():
        raise MissingPretrainedError(
            f"{what} '{model}' is not available: no such local folder. Give a folder written by "
            f"save_pretrained, or a hub id whose files are in the Hugging Face cache "
            f"(`huggingface-cli download ID` on a machine with network)."
        )
    try:
        return cls.from_pretrained(str(Path(model).expanduser()) if looks_local else model, **kwargs)
    except (OSError, ValueError) as err:
        raise MissingPretrainedError(
            f"{what} '{model}' is not available: {str(err).splitlines()[0] if str(err) else type(err).__name__}. "
            f"On a machine with network run `huggingface-cli download {model}` (or `hf download {model}`) and copy "
            f"the Hugging Face cache (~/.cache/huggingface) here, or give a local folder written by "
            f"save_pretrained as the model path."
        ) from err


class AudioEncoder(nn.Module):
    """Base class: waveform at ``sample_rate`` -> one feature vector per video frame."""

    sample_rate: int = 16000
    dim: int
    frozen: bool = True

    def cache_key(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def n_frames(self, n_samples: int, fps: float) -> int:
        return frames_for_duration(n_samples, self.sample_rate, fps)


class TextEncoder(nn.Module):
    """Base class: list of transcripts -> token features and validity mask."""

    dim: int
    frozen: bool = False

    def cache_key(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class LogMelEncoder(AudioEncoder):
    """Log-mel frames (no weights): the pretrained-free default acoustic condition.

    The mel is librosa's (Slaney scale and norm, zero-padded centred STFT), so ``librosa.feature.
    melspectrogram`` is its reference. Power is mapped to dB and then linearly from the fixed range
    ``[db_min, db_max]`` to ``[-1, 1]`` (clamped): a fixed mapping, unlike per-utterance
    normalisation, keeps loudness information and gives the same feature for the same sound in a
    short clip or a long utterance.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        n_fft: int = 400,
        hop_length: int = 160,
        fmin: float = 0.0,
        fmax: float | None = None,
        db_min: float = -100.0,
        db_max: float = 20.0,
    ):
        super().__init__()
        import librosa

        self.sample_rate, self.n_mels, self.n_fft, self.hop_length = int(sample_rate), int(n_mels), int(n_fft), int(hop_length)
        self.fmin, self.fmax = float(fmin), (None if fmax is None else float(fmax))
        self.db_min, self.db_max = float(db_min), float(db_max)
        self.dim = self.n_mels
        fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax)
        self.register_buffer("mel_fb", torch.from_numpy(fb).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)

    def power_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, L] -> [B, n_mels, N]`` power mel, N = 1 + L // hop (centred frames)."""
        spec = torch.stft(
            F.pad(wav.float()[:, None], (self.n_fft // 2, self.n_fft // 2), mode="constant")[:, 0],
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        return self.mel_fb @ spec.abs().pow(2)

    def forward(self, wav: torch.Tensor, fps: float, n_frames: int | None = None) -> torch.Tensor:
        if n_frames is None:
            n_frames = self.n_frames(wav.shape[-1], fps)
        db = 10.0 * torch.log10(self.power_mel(wav).clamp_min(1e-10))
        unit = ((db - self.db_min) / (self.db_max - self.db_min)).clamp(0.0, 1.0) * 2.0 - 1.0
        # Centred STFT: frame j is centred at sample j * hop.
        return interpolate_to_frames(unit.transpose(1, 2), 0.0, self.hop_length / self.sample_rate, n_frames, fps)

    def cache_key(self) -> str:
        cfg = dict(sr=self.sample_rate, n_mels=self.n_mels, n_fft=self.n_fft, hop=self.hop_length, fmin=self.fmin,
                   fmax=self.fmax, db=(self.db_min, self.db_max), v=1)
        return f"LogMelEncoder:{json.dumps(cfg, sort_keys=True)}"


class Wav2Vec2Encoder(AudioEncoder):
    """Frozen wav2vec 2.0 (``transformers.Wav2Vec2Model``), hidden states of one layer.

    Args:
        model: hub id (e.g. ``facebook/wav2vec2-large-xlsr-53``) or a local folder (save_pretrained).
        layer: index into ``hidden_states`` (0 = transformer input, -1 = last layer). Middle layers
            carry more phonetic/articulatory information than the last one of a pretraining-only
            model; the paper does not say which it used.
        normalize: zero-mean/unit-variance per utterance, as the model's feature extractor does when
            ``do_normalize`` (all large checkpoints); ``None`` reads the folder's preprocessor config.
    """

    pretrained_frozen = True  # weights are reloaded from ``model``, not stored in checkpoints

    def __init__(self, model: str = "facebook/wav2vec2-large-xlsr-53", layer: int = -1, normalize: bool | None = None):
        super().__init__()
        from transformers import Wav2Vec2Model

        self.model_id, self.layer = str(model), int(layer)
        self.model = load_pretrained(Wav2Vec2Model, self.model_id, "wav2vec 2.0 model")
        self.model.requires_grad_(False)
        self.model.eval()
        if normalize is None:
            normalize = self._read_do_normalize(True)
        self.normalize = bool(normalize)
        self.sample_rate = 16000
        self.dim = int(self.model.config.hidden_size)
        n_layers = int(self.model.config.num_hidden_layers)
        if not -(n_layers + 1) <= self.layer <= n_layers:
            raise ValueError(f"layer {layer} out of range for {self.model_id} ({n_layers} transformer layers)")
        # Frame j of the conv feature encoder covers samples [j*stride, j*stride + receptive field).
        kernels, strides = list(self.model.config.conv_kernel), list(self.model.config.conv_stride)
        rf, jump = 1, 1
        for k, s in zip(kernels, strides):
            rf += (k - 1) * jump
            jump *= s
        self._stride, self._receptive = jump, rf
        self._fingerprint = _fingerprint(self.model)

    def _read_do_normalize(self, default: bool) -> bool:
        try:
            from transformers import AutoFeatureExtractor

            return bool(getattr(AutoFeatureExtractor.from_pretrained(self.model_id), "do_normalize", default))
        except Exception:  # no preprocessor config saved: the large checkpoints all normalise
            return default

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # frozen: dropout and layer-drop stay off
        return self

    @torch.no_grad()
    def forward(self, wav: torch.Tensor, fps: float, n_frames: int | None = None) -> torch.Tensor:
        if n_frames is None:
            n_frames = self.n_frames(wav.shape[-1], fps)
        x = wav.float()
        if x.shape[-1] < self._receptive:  # shorter than one conv frame: zero-pad to one frame
            x = F.pad(x, (0, self._receptive - x.shape[-1]))
        if self.normalize:
            x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-7)
        out = self.model(x, output_hidden_states=True)
        h = out.hidden_states[self.layer]
        return interpolate_to_frames(h.float(), (self._receptive / 2) / self.sample_rate, self._stride / self.sample_rate, n_frames, fps)

    def cache_key(self) -> str:
        return f"Wav2Vec2Encoder:{self.model_id}:layer={self.layer}:norm={self.normalize}:w={self._fingerprint}"


class _SinusoidalPositions(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, n: int, device) -> torch.Tensor:
        pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
        half = self.dim // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
        pe = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=-1)
        return F.pad(pe, (0, self.dim - pe.shape[-1]))


class CharacterTextEncoder(TextEncoder):
    """Learned character embeddings + a small transformer (pretrained-free text condition).

    Characters are Unicode code points hashed into ``vocab_size`` buckets, so any script works
    (Mandarin hanzi as well as English) without a tokenizer file. Trained with the model.
    """

    PAD = 0

    def __init__(self, dim: int = 128, num_layers: int = 2, num_heads: int = 4, vocab_size: int = 4096,
                 max_chars: int = 256, lowercase: bool = True, dropout: float = 0.0):
        super().__init__()
        self.dim, self.vocab_size, self.max_chars, self.lowercase = int(dim), int(vocab_size), int(max_chars), bool(lowercase)
        self.embed = nn.Embedding(self.vocab_size, self.dim, padding_idx=self.PAD)
        self.positions = _SinusoidalPositions(self.dim)
        layer = nn.TransformerEncoderLayer(self.dim, num_heads, dim_feedforward=4 * self.dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False) if num_layers > 0 else None
        self.norm = nn.LayerNorm(self.dim)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = []
        for t in texts:
            t = " ".join((t or "").split())  # collapse whitespace/newlines
            t = t.lower() if self.lowercase else t
            rows.append([1 + ord(c) % (self.vocab_size - 1) for c in t[: self.max_chars]])
        length = max([len(r) for r in rows] + [1])
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return ids, ids != self.PAD

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(list(texts))
        ids, mask = ids.to(self.embed.weight.device), mask.to(self.embed.weight.device)
        x = self.embed(ids) * math.sqrt(self.dim) + self.positions(ids.shape[1], ids.device)
        if self.encoder is not None:
            # A row without tokens would give NaN attention; give it one dummy key, masked afterwards.
            kpm = ~mask
            kpm[:, 0] &= mask.any(1)
            x = self.encoder(x, src_key_padding_mask=kpm)
        return self.norm(x) * mask[..., None], mask

    def cache_key(self) -> str:  # trained with the model: never cached
        raise TypeError("CharacterTextEncoder is trainable; its outputs are not cached")


class BertTextEncoder(TextEncoder):
    """Frozen BERT (``transformers.BertModel`` + its tokenizer), hidden states of one layer.

    Args:
        model: hub id (e.g. ``bert-base-chinese`` for Mandarin as in the paper, ``bert-base-uncased``)
            or a local folder holding both the model and the tokenizer.
        layer: index into ``hidden_states`` (-1 = last layer).
        max_length: tokens kept per transcript (including [CLS]/[SEP]).
    """

    pretrained_frozen = True
    frozen = True

    def __init__(self, model: str = "bert-base-uncased", layer: int = -1, max_length: int = 128):
        super().__init__()
        from transformers import AutoTokenizer, BertModel

        self.model_id, self.layer, self.max_length = str(model), int(layer), int(max_length)
        self.tokenizer = load_pretrained(AutoTokenizer, self.model_id, "BERT tokenizer")
        self.model = load_pretrained(BertModel, self.model_id, "BERT model")
        self.model.requires_grad_(False)
        self.model.eval()
        self.dim = int(self.model.config.hidden_size)
        self._fingerprint = _fingerprint(self.model)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        texts = [" ".join((t or "").split()) for t in texts]
        device = next(self.model.parameters()).device
        if not any(texts):
            return torch.zeros(len(texts), 1, self.dim, device=device), torch.zeros(len(texts), 1, dtype=torch.bool, device=device)
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tok = {k: v.to(device) for k, v in tok.items()}
        out = self.model(**tok, output_hidden_states=True)
        mask = tok["attention_mask"].bool()
        # An empty transcript still gets [CLS][SEP]; drop them so "no text" really is no tokens.
        mask &= torch.tensor([bool(t) for t in texts], device=device)[:, None]
        return out.hidden_states[self.layer].float() * mask[..., None], mask

    def cache_key(self) -> str:
        return f"BertTextEncoder:{self.model_id}:layer={self.layer}:max={self.max_length}:w={self._fingerprint}"
