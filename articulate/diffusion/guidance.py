"""Classifier-free guidance (Ho & Salimans 2022): ``D = D_uncond + s (D_cond - D_uncond)``.

``s = 1`` is the plain conditional model, ``s = 0`` the unconditional one, ``s > 1`` sharpens the
condition's effect. The unconditional branch is the same network with the condition dropped;
with :class:`~articulate.networks.wav2uti.unet.VideoUNet` a dropped condition is an all-False
``cond_mask`` (every cross-attention query then reads only the learned null token and the pooled
condition is zero), which is what condition dropout must feed during training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DenoiseFn = Callable[..., torch.Tensor]


def guided(denoise_cond: DenoiseFn, denoise_uncond: DenoiseFn, scale: float) -> DenoiseFn:
    """Combine two denoisers ``f(x, sigma)``; skips the branch whose weight is zero."""
    scale = float(scale)

    def fn(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if scale == 1.0:
            return denoise_cond(x, sigma)
        if scale == 0.0:
            return denoise_uncond(x, sigma)
        d_u = denoise_uncond(x, sigma)
        return d_u + scale * (denoise_cond(x, sigma) - d_u)

    return fn


def _cat_batch(a, b):
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b], dim=0)
    return a


class CFGDenoiser:
    """Guided denoiser that runs the conditional and unconditional branches in ONE batched forward.

    ``CFGDenoiser(denoiser, scale)(x, sigma, cond=..., cond_mask=..., uncond=None, uncond_mask=None, **kw)``.
    The unconditional branch uses ``uncond``/``uncond_mask`` when given, else the same ``cond`` with an
    all-False mask (the dropped condition). Other tensor keyword arguments with a batch dimension
    (``low_res``, ``aug_sigma``) are duplicated for both halves. Because conditions arrive per call it
    composes with the long-form sampler, which slices them per window.
    """

    def __init__(self, denoiser: DenoiseFn, scale: float = 1.0, batched: bool = True):
        self.denoiser = denoiser
        self.scale = float(scale)
        self.batched = batched

    def __call__(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        uncond: torch.Tensor | None = None,
        uncond_mask: torch.Tensor | None = None,
        **kw,
    ) -> torch.Tensor:
        if cond is None:  # nothing to guide
            return self.denoiser(x, sigma, **kw)
        B = x.shape[0]
        if uncond is None:
            uncond = cond
            if uncond_mask is None:
                uncond_mask = torch.zeros(cond.shape[:2], dtype=torch.bool, device=cond.device)
        if cond_mask is None:
            cond_mask = torch.ones(cond.shape[:2], dtype=torch.bool, device=cond.device)
        if uncond_mask is None:
            uncond_mask = torch.ones(uncond.shape[:2], dtype=torch.bool, device=uncond.device)
        if self.scale == 1.0:
            return self.denoiser(x, sigma, cond=cond, cond_mask=cond_mask, **kw)
        if self.scale == 0.0:
            return self.denoiser(x, sigma, cond=uncond, cond_mask=uncond_mask, **kw)
        sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).reshape(-1).expand(B)
        if self.batched and uncond.shape == cond.shape:
            kw2 = {k: _cat_batch(v, v) if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == B else v
                   for k, v in kw.items()}
            d = self.denoiser(
                torch.cat([x, x]), torch.cat([sigma, sigma]),
                cond=torch.cat([cond, uncond]), cond_mask=torch.cat([cond_mask, uncond_mask]), **kw2,
            )
            d_c, d_u = d[:B], d[B:]
        else:
            d_c = self.denoiser(x, sigma, cond=cond, cond_mask=cond_mask, **kw)
            d_u = self.denoiser(x, sigma, cond=uncond, cond_mask=uncond_mask, **kw)
        return d_u + self.scale * (d_c - d_u)
