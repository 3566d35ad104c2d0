"""Building blocks of the pseudo-3D video U-Net (:mod:`articulate.networks.wav2uti.unet`).

Layout convention inside the network: features are ``[B*T, C, H, W]`` (frames as a batch) for the
spatial layers; temporal layers regroup them as ``[B*H*W, C, T]`` (one sequence per pixel) and back.
Residual branches whose output layer is zero-initialised start as the identity, so temporal and
attention layers cannot destabilise early training (the network starts as a per-frame image U-Net).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(ch: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides ch (channel counts like 48 or 192)."""
    g = max(d for d in range(1, min(max_groups, ch) + 1) if ch % d == 0)
    return nn.GroupNorm(g, ch, eps=1e-6)


def zero_(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class FourierEmbedding(nn.Module):
    """Random Fourier features of a scalar (NVlabs/edm ``FourierEmbedding``): ``[cos, sin](2 pi f x)``.

    c_noise = ln(sigma)/4 spans only about [-1.6, 1.3]; the fixed frequencies ~ N(0, scale^2) resolve it
    finely, which a positional embedding meant for integer timesteps would not.
    """

    def __init__(self, num_channels: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.freqs.dtype).outer(2 * math.pi * self.freqs)
        return torch.cat([x.cos(), x.sin()], dim=1)


def sinusoidal(pos: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer position encoding of (possibly fractional) positions ``[N] -> [N, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    a = pos.float()[:, None] * freqs[None]
    out = torch.cat([a.sin(), a.cos()], dim=1)
    if dim % 2:
        out = F.pad(out, (0, 1))
    return out


@dataclass
class Context:
    """Per-forward data every block may need (batch/frame counts, embeddings, condition)."""

    B: int
    T: int
    emb: torch.Tensor  # [B*T, E] noise (+ aug + pooled condition) embedding, repeated per frame
    cond: torch.Tensor | None = None  # [B, L, cond_dim]
    cond_mask: torch.Tensor | None = None  # [B, L] bool, True = valid


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, adaptive scale/shift from the embedding (FiLM), 1x1 skip when widths differ."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        x = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.affine(ctx.emb).to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        x = F.silu(torch.addcmul(shift, self.norm2(x), scale + 1))
        x = self.conv2(self.dropout(x))
        return self.skip(h) + x


def _to_temporal(h: torch.Tensor, B: int, T: int) -> torch.Tensor:
    """[B*T, C, H, W] -> [B*H*W, C, T]."""
    _, C, H, W = h.shape
    return h.reshape(B, T, C, H, W).permute(0, 3, 4, 2, 1).reshape(B * H * W, C, T)


def _from_temporal(x: torch.Tensor, B: int, H: int, W: int) -> torch.Tensor:
    """[B*H*W, C, T] -> [B*T, C, H, W]."""
    _, C, T = x.shape
    return x.reshape(B, H, W, C, T).permute(0, 4, 3, 1, 2).reshape(B * T, C, H, W)


class TemporalConv(nn.Module):
    """Residual 1-D convolution over frames at each pixel (kernel 3, zero padding: any T)."""

    def __init__(self, ch: int, kernel_size: int = 3):
        super().__init__()
        self.norm = group_norm(ch)
        self.conv = zero_(nn.Conv1d(ch, ch, kernel_size, padding=kernel_size // 2))

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        if ctx.T == 1:
            return h  # a single frame has no temporal context; conv over zero padding would only add bias 0
        _, C, H, W = h.shape
        x = _to_temporal(h, ctx.B, ctx.T)
        x = self.conv(F.silu(self.norm(x)))
        return h + _from_temporal(x, ctx.B, H, W)


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    N, L, C = x.shape
    return x.reshape(N, L, n, C // n).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    N, n, L, d = x.shape
    return x.transpose(1, 2).reshape(N, L, n * d)


class TemporalAttention(nn.Module):
    """Self-attention over the frames of each pixel; frame positions enter as sinusoidal encodings
    (window-relative: every window starts at 0, as training clips do)."""

    def __init__(self, ch: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = group_norm(ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.out = zero_(nn.Linear(ch, ch))

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        if ctx.T == 1:
            return h
        _, C, H, W = h.shape
        x = self.norm(_to_temporal(h, ctx.B, ctx.T)).transpose(1, 2)  # [N, T, C]
        x = x + sinusoidal(torch.arange(ctx.T, device=h.device), C).to(x.dtype)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(_heads(q, self.num_heads), _heads(k, self.num_heads), _heads(v, self.num_heads))
        y = self.out(_merge(y)).transpose(1, 2)  # [N, C, T]
        return h + _from_temporal(y, ctx.B, H, W)


class SpatialAttention(nn.Module):
    """Self-attention over the pixels of each frame (used at low resolution)."""

    def __init__(self, ch: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = group_norm(ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.out = zero_(nn.Linear(ch, ch))

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        N, C, H, W = h.shape
        x = self.norm(h).flatten(2).transpose(1, 2)  # [N, HW, C]
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(_heads(q, self.num_heads), _heads(k, self.num_heads), _heads(v, self.num_heads))
        return h + self.out(_merge(y)).transpose(1, 2).reshape(N, C, H, W)


class CrossAttention(nn.Module):
    """Video tokens attend to the condition sequence ``cond [B, L, cond_dim]``.

    Each frame's pixels query the condition; frame t and condition step l carry sinusoidal time
    encodings at their positions on a common frame axis (``u_l = (l + 1/2) T / L - 1/2``), so
    attention can align a frame with the speech around it whatever the condition rate. Optional
    ``window``: a frame only sees condition steps with ``|u_l - t| <= window``. A learned null
    key/value is always visible: padded (``cond_mask`` False) steps are ignored, and a fully masked or
    absent condition reads only the null token, which is the unconditional model of CFG.
    """

    def __init__(self, ch: int, cond_dim: int, num_heads: int, window: float | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.norm = group_norm(ch)
        self.cond_norm = nn.LayerNorm(cond_dim)
        self.cond_proj = nn.Linear(cond_dim, ch)
        self.q = nn.Linear(ch, ch)
        self.k = nn.Linear(ch, ch)
        self.v = nn.Linear(ch, ch)
        self.null_k = nn.Parameter(torch.randn(ch) / math.sqrt(ch))
        self.null_v = nn.Parameter(torch.randn(ch) / math.sqrt(ch))
        self.out = zero_(nn.Linear(ch, ch))

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        N, C, H, W = h.shape
        B, T = ctx.B, ctx.T
        if ctx.cond is None:  # softmax over the null key alone = null value
            return h + self.out(self.null_v.to(h.dtype))[None, :, None, None]
        cond = ctx.cond
        L = cond.shape[1]
        dev = h.device
        t_pos = torch.arange(T, device=dev, dtype=torch.float32)
        u_pos = (torch.arange(L, device=dev, dtype=torch.float32) + 0.5) * (T / L) - 0.5
        x = self.norm(h).flatten(2).transpose(1, 2)  # [B*T, HW, C]
        x = x + sinusoidal(t_pos, C).to(x.dtype).repeat(B, 1)[:, None, :]
        c = self.cond_proj(self.cond_norm(cond.to(x.dtype)))  # [B, L, C]
        k = self.k(c + sinusoidal(u_pos, C).to(x.dtype)[None])
        v = self.v(c)
        k = torch.cat([self.null_k.to(k.dtype).expand(B, 1, C), k], dim=1).repeat_interleave(T, dim=0)
        v = torch.cat([self.null_v.to(v.dtype).expand(B, 1, C), v], dim=1).repeat_interleave(T, dim=0)
        valid = torch.ones(B, L, dtype=torch.bool, device=dev) if ctx.cond_mask is None else ctx.cond_mask.to(dev).bool()
        mask = valid.repeat_interleave(T, dim=0)  # [B*T, L]
        if self.window is not None:
            near = (u_pos[None, :] - t_pos[:, None]).abs() <= self.window  # [T, L]
            mask = mask & near.repeat(B, 1)
        mask = torch.cat([torch.ones(B * T, 1, dtype=torch.bool, device=dev), mask], dim=1)[:, None, None, :]
        y = F.scaled_dot_product_attention(
            _heads(self.q(x), self.num_heads), _heads(k, self.num_heads), _heads(v, self.num_heads), attn_mask=mask
        )
        return h + self.out(_merge(y)).transpose(1, 2).reshape(N, C, H, W)


class Downsample(nn.Module):
    """Stride-2 3x3 convolution per frame (halves H and W; T is never resampled)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        return self.conv(h)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 convolution per frame."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
