"""Fusion of the acoustic and textual conditions into one frame-aligned condition sequence.

Both fusions map audio features ``[B, T, audio_dim]`` (one per video frame) to a condition
``[B, T, cond_dim]`` that the denoiser reads through cross-attention, and return
``(cond, cond_mask)`` with ``cond_mask [B, T]`` True for valid frames. Frame positions are added as
sinusoidal embeddings so the denoiser's cross-attention can align video frame t with condition t,
and a small temporal convolution gives each frame its acoustic context (coarticulation spans
~100 ms, i.e. several 60 fps frames).

* :class:`CrossAttentionFusion` (audio + text, the paper's fusion): audio frames are the queries,
  transcript tokens the keys/values (the paper's "cross-attention mechanism"); padding tokens are
  masked, and a transcript with no tokens contributes nothing (the audio path passes unchanged), which
  is also the "null text" of classifier-free guidance.
* :class:`AudioOnlyFusion`: the same audio path without text (the paper's audio-only model).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AudioOnlyFusion", "CrossAttentionFusion", "sinusoidal_positions"]


def sinusoidal_positions(n: int, dim: int, device=None) -> torch.Tensor:
    """Transformer sinusoidal position table ``[n, dim]``."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    pe = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=-1)
    return F.pad(pe, (0, dim - pe.shape[-1]))


class _AudioPath(nn.Module):
    """Per-frame normalisation + projection, temporal context convolution, frame positions."""

    def __init__(self, audio_dim: int, cond_dim: int, context_kernel: int, dropout: float):
        super().__init__()
        self.norm_in = nn.LayerNorm(audio_dim)
        self.proj = nn.Linear(audio_dim, cond_dim)
        self.context = nn.Conv1d(cond_dim, cond_dim, context_kernel, padding=context_kernel // 2) if context_kernel > 1 else None
        self.drop = nn.Dropout(dropout)
        self.cond_dim = cond_dim

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.norm_in(audio.float()))
        if self.context is not None:
            x = x + self.context(F.silu(x).transpose(1, 2)).transpose(1, 2)
        return self.drop(x) + sinusoidal_positions(x.shape[1], self.cond_dim, x.device)


class AudioOnlyFusion(nn.Module):
    """Audio features -> condition sequence (text, if given, is ignored)."""

    def __init__(self, audio_dim: int = 80, cond_dim: int = 128, context_kernel: int = 5, dropout: float = 0.0):
        super().__init__()
        self.audio_dim, self.cond_dim, self.text_dim = int(audio_dim), int(cond_dim), None
        self.audio = _AudioPath(self.audio_dim, self.cond_dim, int(context_kernel), dropout)
        self.out_norm = nn.LayerNorm(self.cond_dim)

    def forward(self, audio: torch.Tensor, text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None):
        cond = self.out_norm(self.audio(audio))
        return cond, torch.ones(cond.shape[:2], dtype=torch.bool, device=cond.device)


class _CrossBlock(nn.Module):
    """Pre-norm cross-attention (queries: audio frames; keys/values: text tokens) + feed-forward."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"cond_dim {dim} is not divisible by num_heads {num_heads}")
        self.h = num_heads
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.o = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q(self.norm_q(x)).view(b, t, self.h, d // self.h).transpose(1, 2)
        k, v = self.kv(self.norm_kv(text)).chunk(2, dim=-1)
        k = k.view(b, -1, self.h, d // self.h).transpose(1, 2)
        v = v.view(b, -1, self.h, d // self.h).transpose(1, 2)
        has_text = text_mask.any(dim=1)
        # A row without tokens gets one dummy valid key (no NaN), and its output is zeroed below.
        mask = text_mask.clone()
        mask[:, 0] |= ~has_text
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        a = self.o(a.transpose(1, 2).reshape(b, t, d)) * has_text[:, None, None].to(x.dtype)
        x = x + a
        return x + self.ff(self.norm_ff(x))


class CrossAttentionFusion(nn.Module):
    """Audio frames attend to transcript tokens -> condition ``[B, T, cond_dim]`` (paper Fig. 1b)."""

    def __init__(self, audio_dim: int = 80, text_dim: int = 128, cond_dim: int = 128, num_heads: int = 4,
                 num_layers: int = 1, context_kernel: int = 5, dropout: float = 0.0):
        super().__init__()
        self.audio_dim, self.text_dim, self.cond_dim = int(audio_dim), int(text_dim), int(cond_dim)
        self.audio = _AudioPath(self.audio_dim, self.cond_dim, int(context_kernel), dropout)
        self.text_proj = nn.Sequential(nn.LayerNorm(self.text_dim), nn.Linear(self.text_dim, self.cond_dim))
        self.blocks = nn.ModuleList(_CrossBlock(self.cond_dim, int(num_heads), dropout) for _ in range(int(num_layers)))
        self.out_norm = nn.LayerNorm(self.cond_dim)

    def forward(self, audio: torch.Tensor, text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None):
        x = self.audio(audio)
        if text is None or text.shape[1] == 0:  # no transcript: the same path as an all-padding one
            text = x.new_zeros(x.shape[0], 1, self.text_dim)
            text_mask = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
        elif text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        tokens = self.text_proj(text.float())
        for block in self.blocks:
            x = block(x, tokens, text_mask.bool())
        cond = self.out_norm(x)
        return cond, torch.ones(cond.shape[:2], dtype=torch.bool, device=cond.device)
