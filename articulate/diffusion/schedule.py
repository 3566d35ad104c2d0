"""Noise-level schedules of EDM (Karras et al. 2022)."""

from __future__ import annotations

import torch


def karras_sigmas(
    num_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 160.0,
    rho: float = 7.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """EDM time steps ``sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho``.

    Returns ``N + 1`` decreasing levels: ``sigma_0 = sigma_max`` ... ``sigma_{N-1} = sigma_min``
    followed by the final 0 (EDM eq. 5 and the appended ``t_N = 0``). ``num_steps = 1`` gives
    ``[sigma_max, 0]`` (the formula divides by N - 1).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if num_steps == 1:
        steps = torch.tensor([sigma_max], dtype=dtype, device=device)
    else:
        i = torch.arange(num_steps, dtype=dtype, device=device)
        a, b = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
        steps = (a + i / (num_steps - 1) * (b - a)) ** rho
        steps[0], steps[-1] = sigma_max, sigma_min  # exact endpoints (the powers round off by ~1e-15)
    return torch.cat([steps, torch.zeros(1, dtype=dtype, device=device)])


def lognormal_sigmas(
    n: int,
    P_mean: float = -1.2,
    P_std: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Training noise levels ``ln(sigma) ~ N(P_mean, P_std^2)`` (EDM Table 1), shape ``[n]``."""
    z = torch.randn(n, generator=generator, device=device, dtype=dtype)
    return (z * P_std + P_mean).exp()
