"""Pseudo-3D video U-Net denoiser for wav2uti (the raw network F of EDM; wrap it in ``EDMPrecond``).

Spatial 2-D ResNet blocks (GroupNorm, SiLU, FiLM scale/shift from the noise embedding) process each
frame; after each one come the paper's "time-aware" temporal layers (1-D temporal convolution and/or
temporal self-attention at every pixel), then spatial self-attention and cross-attention to the fused
speech condition at low resolution. Height and width are down/up-sampled, the frame axis never is, so
any clip length works (and windows of the long-form sampler see exactly the trained layout).

Cascade: a super-resolution stage sets ``low_res_channels`` (the noise-augmented, upsampled low-res
video is concatenated to the input) and embeds the augmentation level ``aug_noise`` alongside c_noise.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .unet_blocks import (
    Context,
    CrossAttention,
    Downsample,
    FourierEmbedding,
    ResBlock,
    SpatialAttention,
    TemporalAttention,
    TemporalConv,
    Upsample,
    group_norm,
)

# aug_noise used when a super-resolution network is called without one: ln(0.002)/4, "clean input".
CLEAN_AUG_NOISE = -1.5536


def _in_octave(res: int, targets: tuple[int, ...]) -> bool:
    """True when ``res`` lies in ``(r/2, r]`` for some target r: 16 selects 16 (64-px input) and 14 (112 px)."""
    return any(r / 2 < res <= r for r in targets)


class _Stage(nn.Module):
    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        for b in self.blocks:
            h = b(h, ctx)
        return h


class VideoUNet(nn.Module):
    """``forward(x [B,C,T,H,W], c_noise [B], cond=None [B,L,cond_dim], cond_mask=None [B,L] bool,
    low_res=None [B,low_res_channels,T,H,W], aug_noise=None [B], global_cond=None [B,global_cond_dim])``
    -> ``[B, out_channels, T, H, W]``.

    Args:
        resolution: frame size the model is built for; places attention (``attn_resolutions`` and
            ``cross_attn_resolutions`` name feature-map sizes, matched per octave ``(r/2, r]`` so that
            16 means the 16x16 level at 64 px and the 14x14 level at 112 px). Any H, W divisible by
            ``2**(len(channel_mults)-1)`` runs.
        temporal: temporal layers after each ResBlock: ``"conv"``, ``"attention"`` or ``"both"``.
        temporal_attn_resolutions: restrict temporal attention to these sizes (None: every level).
        cond_dim: width of the condition sequence (0: unconditional network).
        cross_attn_window: frames a video frame may look away in the condition (None: all).
        pool_cond: add the masked mean of the condition to the noise embedding (global context).
        frame_cond: add frame t's condition (projected) to frame t's embedding, so every ResBlock's
            scale/shift reads the speech of its own frame (the condition is frame-aligned); a masked
            (dropped) condition step adds 0, as CFG's unconditional branch needs.
        global_cond_dim: width of an optional per-clip vector added to the embedding (0: none).
        low_res_channels: channels of the low-res video concatenated for a super-resolution stage.
        noise_emb_dim: embedding width (default 4 x base_channels).
        num_heads: attention heads (every attended width must be divisible by it).
        use_checkpointing: recompute each stage in backward (activation memory for compute).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        channel_mults: tuple[int, ...] = (1, 2, 3, 4),
        num_res_blocks: int = 2,
        resolution: int = 64,
        attn_resolutions: tuple[int, ...] = (16,),
        cross_attn_resolutions: tuple[int, ...] = (16, 8),
        temporal: Literal["conv", "attention", "both"] = "both",
        temporal_attn_resolutions: tuple[int, ...] | None = None,
        cond_dim: int = 256,
        cross_attn_window: float | None = None,
        pool_cond: bool = True,
        frame_cond: bool = False,
        global_cond_dim: int = 0,
        low_res_channels: int = 0,
        noise_emb_dim: int | None = None,
        dropout: float = 0.0,
        num_heads: int = 4,
        use_checkpointing: bool = False,
    ):
        super().__init__()
        if temporal not in ("conv", "attention", "both"):
            raise ValueError(f"temporal must be 'conv', 'attention' or 'both', got {temporal!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.low_res_channels = low_res_channels
        self.cond_dim = cond_dim
        self.global_cond_dim = global_cond_dim
        self.levels = len(channel_mults)
        self.use_checkpointing = use_checkpointing
        E = noise_emb_dim or 4 * base_channels
        self.noise_emb_dim = E

        def mlp(i: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(i, E), nn.SiLU(), nn.Linear(E, E))

        self.map_noise = FourierEmbedding(base_channels)
        self.noise_mlp = mlp(base_channels)
        if low_res_channels > 0:
            self.map_aug = FourierEmbedding(base_channels)
            self.aug_mlp = mlp(base_channels)
        # bias-free: an empty (fully masked) condition pools to 0 and must add exactly 0
        self.pool_proj = nn.Linear(cond_dim, E, bias=False) if (pool_cond and cond_dim > 0) else None
        self.frame_proj = nn.Linear(cond_dim, E, bias=False) if (frame_cond and cond_dim > 0) else None
        self.global_proj = nn.Linear(global_cond_dim, E, bias=False) if global_cond_dim > 0 else None
        self.emb_act = nn.SiLU()

        def temporal_blocks(ch: int, res: int) -> list[nn.Module]:
            out: list[nn.Module] = []
            if temporal in ("conv", "both"):
                out.append(TemporalConv(ch))
            if temporal in ("attention", "both") and (
                temporal_attn_resolutions is None or _in_octave(res, tuple(temporal_attn_resolutions))
            ):
                out.append(TemporalAttention(ch, num_heads))
            return out

        def stage(in_ch: int, ch: int, res: int) -> _Stage:
            blocks: list[nn.Module] = [ResBlock(in_ch, ch, E, dropout), *temporal_blocks(ch, res)]
            if _in_octave(res, tuple(attn_resolutions)):
                blocks.append(SpatialAttention(ch, num_heads))
            if cond_dim > 0 and _in_octave(res, tuple(cross_attn_resolutions)):
                blocks.append(CrossAttention(ch, cond_dim, num_heads, cross_attn_window))
            return _Stage(blocks)

        self.conv_in = nn.Conv2d(in_channels + low_res_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_ch = [base_channels]
        ch = base_channels
        for lvl, mult in enumerate(channel_mults):
            res = resolution // 2**lvl
            for _ in range(num_res_blocks):
                self.down.append(stage(ch, base_channels * mult, res))
                ch = base_channels * mult
                skip_ch.append(ch)
            if lvl < self.levels - 1:
                self.down.append(_Stage([Downsample(ch)]))
                skip_ch.append(ch)
        res = resolution // 2 ** (self.levels - 1)
        mid = [ResBlock(ch, ch, E, dropout), *temporal_blocks(ch, res), SpatialAttention(ch, num_heads)]
        if cond_dim > 0:
            mid.append(CrossAttention(ch, cond_dim, num_heads, cross_attn_window))
        mid += [ResBlock(ch, ch, E, dropout), *temporal_blocks(ch, res)]
        self.mid = _Stage(mid)
        self.up = nn.ModuleList()
        self.up_is_res = []  # which up stages consume a skip (the upsamplers do not)
        for lvl in reversed(range(self.levels)):
            res = resolution // 2**lvl
            out_ch = base_channels * channel_mults[lvl]
            for _ in range(num_res_blocks + 1):
                self.up.append(stage(ch + skip_ch.pop(), out_ch, res))
                self.up_is_res.append(True)
                ch = out_ch
            if lvl > 0:
                self.up.append(_Stage([Upsample(ch)]))
                self.up_is_res.append(False)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def _embed(self, c_noise, B, cond, cond_mask, aug_noise, global_cond, dtype, device):
        emb = self.noise_mlp(self.map_noise(c_noise.reshape(-1).expand(B).to(device)).to(dtype))
        if self.low_res_channels > 0:
            a = torch.full((B,), CLEAN_AUG_NOISE, device=device) if aug_noise is None else aug_noise
            emb = emb + self.aug_mlp(self.map_aug(a.reshape(-1).expand(B).to(device)).to(dtype))
        if self.pool_proj is not None and cond is not None:
            m = torch.ones(cond.shape[:2], device=device) if cond_mask is None else cond_mask.to(device).float()
            pooled = (cond.to(dtype) * m[..., None].to(dtype)).sum(1) / m.sum(1, keepdim=True).clamp_min(1).to(dtype)
            emb = emb + self.pool_proj(pooled)
        if self.global_proj is not None and global_cond is not None:
            emb = emb + self.global_proj(global_cond.to(dtype))
        return emb

    def _frame_embed(self, emb: torch.Tensor, T: int, cond: torch.Tensor | None, cond_mask: torch.Tensor | None) -> torch.Tensor:
        """``[B, E]`` -> ``[B*T, E]``: the clip's embedding per frame, plus frame t's own condition."""
        B = emb.shape[0]
        out = emb.repeat_interleave(T, dim=0)
        if self.frame_proj is None or cond is None:
            return self.emb_act(out)
        if cond.shape[1] != T:
            raise ValueError(f"frame_cond needs one condition step per frame: got {cond.shape[1]} for {T} frames")
        f = self.frame_proj(cond.to(emb.dtype))
        if cond_mask is not None:
            f = f * cond_mask.to(f.device)[..., None].to(f.dtype)
        return self.emb_act(out + f.reshape(B * T, -1))

    def _run(self, stage: nn.Module, h: torch.Tensor, ctx: Context) -> torch.Tensor:
        if self.use_checkpointing and torch.is_grad_enabled() and h.requires_grad:
            return checkpoint(stage, h, ctx, use_reentrant=False)
        return stage(h, ctx)

    def forward(
        self,
        x: torch.Tensor,
        c_noise: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        aug_noise: torch.Tensor | None = None,
        global_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be [B, {self.in_channels}, T, H, W], got {tuple(x.shape)}")
        B, _, T, H, W = x.shape
        f = 2 ** (self.levels - 1)
        if H % f or W % f:
            raise ValueError(f"H and W must be divisible by {f} for {self.levels} levels, got {H}x{W}")
        if self.low_res_channels > 0:
            if low_res is None or low_res.shape != (B, self.low_res_channels, T, H, W):
                got = None if low_res is None else tuple(low_res.shape)
                raise ValueError(f"low_res must be [B, {self.low_res_channels}, T, H, W] = {(B, self.low_res_channels, T, H, W)}, got {got}")
            x = torch.cat([x, low_res.to(x.dtype)], dim=1)
        if cond is not None:
            if self.cond_dim == 0:
                raise ValueError("this VideoUNet was built with cond_dim=0 (unconditional) but got a condition")
            if cond.ndim != 3 or cond.shape[0] != B or cond.shape[2] != self.cond_dim:
                raise ValueError(f"cond must be [B={B}, L, {self.cond_dim}], got {tuple(cond.shape)}")
            if cond_mask is not None and cond_mask.shape != cond.shape[:2]:
                raise ValueError(f"cond_mask must be {tuple(cond.shape[:2])}, got {tuple(cond_mask.shape)}")
        dtype = self.conv_in.weight.dtype
        emb = self._embed(c_noise, B, cond, cond_mask, aug_noise, global_cond, dtype, x.device)
        ctx = Context(B=B, T=T, emb=self._frame_embed(emb, T, cond, cond_mask), cond=cond, cond_mask=cond_mask)
        h = self.conv_in(x.to(dtype).transpose(1, 2).reshape(B * T, -1, H, W))
        skips = [h]
        for st in self.down:
            h = self._run(st, h, ctx)
            skips.append(h)
        h = self._run(self.mid, h, ctx)
        for st, is_res in zip(self.up, self.up_is_res):
            if is_res:
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(st, h, ctx)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return h.reshape(B, T, self.out_channels, H, W).transpose(1, 2)
