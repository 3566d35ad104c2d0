"""EDM preconditioning: D(x; sigma) = c_skip x + c_out F(c_in x; c_noise, cond).

The wrapped network ``F`` sees unit-variance inputs and targets at every noise level, which is
what makes one network train well from sigma = 0.002 to 160 (Karras et al. 2022, Sec. 5).
"""

from __future__ import annotations

import torch
from torch import nn


def _per_sample(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """sigma as ``[B, 1, ..., 1]`` (or ``[1, ..., 1]`` for a scalar) in x's dtype, broadcastable to x."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.reshape(1)
    if sigma.ndim != 1 or sigma.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"sigma must be a scalar or [B] with B={x.shape[0]}, got shape {tuple(sigma.shape)}")
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


def edm_coefficients(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """(c_skip, c_out, c_in, c_noise) of EDM Table 1 for noise levels ``sigma`` (any shape)."""
    sd2 = sigma_data**2
    s2 = sigma**2
    c_skip = sd2 / (s2 + sd2)
    c_out = sigma * sigma_data / (s2 + sd2).sqrt()
    c_in = 1.0 / (s2 + sd2).sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


def noise_augment(
    x: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x + sigma * n`` with n ~ N(0, I), sigma per sample: the cascade's low-res conditioning augmentation."""
    n = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + _per_sample(sigma, x) * n


class EDMPrecond(nn.Module):
    """Wraps a raw network ``net(x_in, c_noise, cond=..., cond_mask=..., **kw)`` into the EDM denoiser.

    ``forward(x, sigma, cond=None, cond_mask=None, **net_kwargs)`` returns ``D(x; sigma)`` in x's dtype.
    ``sigma`` is a scalar or one level per sample ``[B]``. The network runs in its own parameter dtype
    (the sampler may hold x in float64; the network never needs to).

    ``cond``/``cond_mask`` are passed to the network only when given, so unconditional networks need not
    accept them. Super-resolution stage: pass ``low_res`` (the noise-augmented upsampled low-res video,
    data scale) and ``aug_sigma`` (its augmentation level per sample, >= 0); the network receives
    ``low_res`` scaled to unit variance, ``low_res / sqrt(sigma_data^2 + aug_sigma^2)``, and
    ``aug_noise = ln(max(aug_sigma, sigma_min)) / 4`` (the same transform as c_noise; clamped because
    an un-augmented input has aug_sigma = 0).
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.25, sigma_min: float = 0.002, sigma_max: float = 160.0):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return edm_coefficients(sigma, self.sigma_data)

    def _net_dtype(self, x: torch.Tensor) -> torch.dtype:
        for p in self.net.parameters():
            if p.is_floating_point():
                return p.dtype
        return x.dtype

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor | float,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        **net_kwargs,
    ) -> torch.Tensor:
        s = _per_sample(sigma, x)
        c_skip, c_out, c_in, c_noise = self.coefficients(s)
        dtype = self._net_dtype(x)
        kwargs = dict(net_kwargs)
        if cond is not None:
            kwargs["cond"] = cond
        if cond_mask is not None:
            kwargs["cond_mask"] = cond_mask
        aug_sigma = kwargs.pop("aug_sigma", None)
        if kwargs.get("low_res") is not None:
            lr = kwargs["low_res"]
            a = torch.zeros(1, device=x.device, dtype=x.dtype) if aug_sigma is None else aug_sigma
            a = _per_sample(a, lr.to(x.dtype))
            kwargs["low_res"] = (lr.to(x.dtype) / (a**2 + self.sigma_data**2).sqrt()).to(dtype)
            kwargs["aug_noise"] = (
                a.clamp_min(self.sigma_min).log().flatten() / 4.0
            ).expand(x.shape[0]).to(dtype)
        c_noise_b = c_noise.flatten().expand(x.shape[0])
        F_x = self.net((c_in * x).to(dtype), c_noise_b.to(dtype), **kwargs)
        return c_skip * x + c_out * F_x.to(x.dtype)
