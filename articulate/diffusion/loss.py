"""EDM training loss (Karras et al. 2022, Table 1; NVlabs/edm ``training/loss.py:EDMLoss``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .schedule import lognormal_sigmas


class EDMLoss:
    """``lambda(sigma) * (D(x0 + sigma n; sigma) - x0)^2`` per element, ``ln sigma ~ N(P_mean, P_std^2)``.

    ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2``, so with EDM preconditioning the
    loss equals the unit-weighted error of the raw network output against its effective target. The
    caller reduces (mean over elements and batch; any masking of padded frames happens there).
    """

    component = True  # built from YAML (and from checkpoints: articulate.components)

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.25):
        self.P_mean = float(P_mean)
        self.P_std = float(P_std)
        self.sigma_data = float(sigma_data)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def sample_sigma(
        self, n: int, device=None, dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return lognormal_sigmas(n, self.P_mean, self.P_std, generator=generator, device=device, dtype=dtype)

    def __call__(
        self,
        denoiser: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_mask: torch.Tensor | None = None,
        sigma: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **kw,
    ) -> torch.Tensor:
        """Per-element weighted loss, same shape as ``x0``.

        ``sigma`` ([B]) and ``noise`` (like x0, unit variance) may be given to fix the draw (tests,
        variance reduction); otherwise they are sampled (with ``generator`` when given).
        Extra keyword arguments (e.g. ``low_res``, ``aug_sigma``) go to the denoiser.
        """
        B = x0.shape[0]
        if sigma is None:
            sigma = self.sample_sigma(B, device=x0.device, dtype=x0.dtype, generator=generator)
        sigma = torch.as_tensor(sigma, device=x0.device, dtype=x0.dtype).reshape(-1).expand(B)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        s = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
        if cond is not None:
            kw["cond"] = cond
        if cond_mask is not None:
            kw["cond_mask"] = cond_mask
        D = denoiser(x0 + s * noise, sigma, **kw)
        return self.weight(s) * (D - x0) ** 2
