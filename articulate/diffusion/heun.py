"""EDM stochastic Heun sampler (Karras et al. 2022, Algorithm 2; NVlabs/edm ``edm_sampler``).

Per step i (levels ``t_0 = sigma_max > ... > t_{N-1} = sigma_min > t_N = 0``):

1. churn: ``gamma_i = min(S_churn / N, sqrt(2) - 1)`` if ``S_min <= t_i <= S_max`` else 0;
   ``t_hat = (1 + gamma_i) t_i``; ``x_hat = x_i + sqrt(t_hat^2 - t_i^2) S_noise eps``;
2. Euler: ``d = (x_hat - D(x_hat; t_hat)) / t_hat``; ``x_{i+1} = x_hat + (t_{i+1} - t_hat) d``;
3. unless i is the last step (``t_{i+1} = 0``): ``d' = (x_{i+1} - D(x_{i+1}; t_{i+1})) / t_{i+1}``
   and ``x_{i+1} = x_hat + (t_{i+1} - t_hat) (d + d') / 2``.

So N steps cost ``2N - 1`` denoiser evaluations. With ``S_churn = 0`` no noise is drawn after the
initial latents: the output is a deterministic function of them.

Truncated start (``sigma_start``, ours, not the reference's): the schedule runs from ``sigma_start`` instead
of ``sigma_max`` (the same Karras spacing below it) and the latents are scaled to it. The sample then starts at
the data space's origin plus noise of that level, so the coarse structure the skipped levels would have drawn
stays at the origin's: with a standardiser that removes a prediction (the speech prior), the origin is that
prediction, and a low start keeps its shape while the remaining levels add the detail (speckle). It trades the
sample's diversity for its distance to the conditional mean; ``None`` is EDM's full schedule.

Precision: like the reference, the sampler state is kept in float64 by default (``dtype``). The
network itself runs in its own dtype (``EDMPrecond`` casts), so float64 costs only the elementwise
update arithmetic, which is negligible next to the network; it avoids accumulated rounding in the
long chain of ``x_hat + (t_next - t_hat) d`` updates when sigma spans 160 -> 0.002 (5 decades).
Use ``"float32"`` on devices without float64 support.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from articulate.utils.progress import report

from .schedule import karras_sigmas

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_DTYPES = {"float64": torch.float64, "float32": torch.float32, "double": torch.float64, "float": torch.float32}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).replace("torch.", "")]
    except KeyError:
        raise ValueError(f"sampler dtype must be float32 or float64, got {dtype!r}") from None


def _own(denoised: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The denoiser's output in x's dtype, as a tensor the step may overwrite (a copy if it is x's memory)."""
    out = denoised.to(x.dtype)
    return out.clone() if out.data_ptr() == x.data_ptr() else out


class HeunSampler:
    """EDM Algorithm 2. ``sampler(denoise_fn, shape_or_latents, generator=None)`` -> samples.

    ``denoise_fn(x, sigma)`` receives x in the sampler dtype and ``sigma`` as ``[B]`` and returns
    ``D(x; sigma)`` (any float dtype; it is cast back). Bind conditions with a closure or
    ``functools.partial``, or use :class:`~articulate.diffusion.guidance.CFGDenoiser`.
    """

    component = True  # built from YAML (and from checkpoints: articulate.components)

    def __init__(
        self,
        num_steps: int = 32,
        sigma_min: float = 0.002,
        sigma_max: float = 160.0,
        rho: float = 7.0,
        S_churn: float = 0.0,
        S_min: float = 0.05,
        S_max: float = 50.0,
        S_noise: float = 1.003,
        dtype: str = "float64",
        sigma_start: float | None = None,
    ):
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if S_churn < 0:
            raise ValueError(f"S_churn must be >= 0, got {S_churn}")
        self.num_steps = int(num_steps)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.rho = float(rho)
        self.S_churn = float(S_churn)
        self.S_min = float(S_min)
        self.S_max = float(S_max)
        self.S_noise = float(S_noise)
        self.dtype = resolve_dtype(dtype)
        self.sigma_start = None if sigma_start is None else float(sigma_start)
        if self.sigma_start is not None and not self.sigma_min < self.sigma_start:
            raise ValueError(f"sigma_start must be above sigma_min ({self.sigma_min}), got {sigma_start}")
        self.last_nfe = 0  # denoiser calls made by the last __call__ (a batched call counts once)

    def replace(self, **changes) -> HeunSampler:
        """A copy with some settings changed (``num_steps=8``, ``sigma_start=0.5``)."""
        keys = ("num_steps", "sigma_min", "sigma_max", "rho", "S_churn", "S_min", "S_max", "S_noise", "dtype",
                "sigma_start")
        unknown = set(changes) - set(keys)
        if unknown:
            raise TypeError(f"HeunSampler.replace: unknown settings {sorted(unknown)}")
        return HeunSampler(**{**{k: getattr(self, k) for k in keys}, **changes})

    @property
    def nfe(self) -> int:
        """Network evaluations per sample: two per step, one on the last step."""
        return 2 * self.num_steps - 1

    @property
    def deterministic(self) -> bool:
        return self.S_churn == 0

    @property
    def sigma_top(self) -> float:
        """The level sampling starts from: ``sigma_start`` when set (at most ``sigma_max``), else ``sigma_max``."""
        return self.sigma_max if self.sigma_start is None else min(self.sigma_start, self.sigma_max)

    def sigmas(self, device=None) -> torch.Tensor:
        return karras_sigmas(self.num_steps, self.sigma_min, self.sigma_top, self.rho, self.dtype, device)

    def gamma(self, t_cur: float) -> float:
        if self.S_churn > 0 and self.S_min <= t_cur <= self.S_max:
            return min(self.S_churn / self.num_steps, math.sqrt(2.0) - 1.0)
        return 0.0

    def init_latents(
        self,
        shape_or_latents: Sequence[int] | torch.Tensor,
        generator: torch.Generator | None = None,
        device=None,
    ) -> torch.Tensor:
        """``x_0 = sigma_top * latents`` in the sampler dtype; latents ~ N(0, I) are drawn in float32
        (like the reference, so float32 and float64 runs start from the same noise) unless given."""
        if isinstance(shape_or_latents, torch.Tensor):
            latents = shape_or_latents
        else:
            latents = torch.randn(tuple(shape_or_latents), generator=generator, device=device, dtype=torch.float32)
        return latents.to(self.dtype) * self.sigma_top

    def step(
        self,
        denoise_fn: DenoiseFn,
        x_cur: torch.Tensor,
        i: int,
        sigmas: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, int]:
        """One step of Algorithm 2 from ``sigmas[i]`` to ``sigmas[i+1]``; returns (x_next, evaluations)."""
        t_cur, t_next = float(sigmas[i]), float(sigmas[i + 1])
        B = x_cur.shape[0]
        gamma = self.gamma(t_cur)
        t_hat = t_cur + gamma * t_cur
        if gamma > 0:
            eps = torch.randn(x_cur.shape, generator=generator, device=x_cur.device, dtype=x_cur.dtype)
            x_hat = x_cur + math.sqrt(t_hat**2 - t_cur**2) * self.S_noise * eps
        else:
            x_hat = x_cur
        s_hat = torch.full((B,), t_hat, dtype=x_cur.dtype, device=x_cur.device)
        # In place where the values stay the same: a long video's latent is large, and each full-length
        # temporary is memory that grows with the length of the speech.
        d_cur = _own(denoise_fn(x_hat, s_hat), x_hat).sub_(x_hat).div_(-t_hat)  # (x_hat - D) / t_hat
        x_next = torch.add(x_hat, d_cur, alpha=t_next - t_hat)
        if i == len(sigmas) - 2:  # last step lands on sigma = 0: plain Euler
            report("sampling", i + 1, len(sigmas) - 1)
            return x_next, 1
        s_next = torch.full((B,), t_next, dtype=x_cur.dtype, device=x_cur.device)
        d_prime = _own(denoise_fn(x_next, s_next), x_next).sub_(x_next).div_(-t_next)
        del x_next
        report("sampling", i + 1, len(sigmas) - 1)  # a no-op unless a command asked for progress
        return d_cur.add_(d_prime).mul_(0.5 * (t_next - t_hat)).add_(x_hat), 2

    @torch.no_grad()
    def __call__(
        self,
        denoise_fn: DenoiseFn,
        shape_or_latents: Sequence[int] | torch.Tensor,
        generator: torch.Generator | None = None,
        device=None,
        callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Sample; returns float32 (or the latents' dtype when latents are given).

        ``callback(i, x)`` is called after each step (progress, intermediate frames).
        """
        if isinstance(shape_or_latents, torch.Tensor):
            out_dtype, device = shape_or_latents.dtype, shape_or_latents.device
        else:
            out_dtype = torch.float32
        x = self.init_latents(shape_or_latents, generator, device)
        sigmas = self.sigmas(x.device)
        self.last_nfe = 0
        for i in range(self.num_steps):
            x, n = self.step(denoise_fn, x, i, sigmas, generator)
            self.last_nfe += n
            if callback is not None:
                callback(i, x)
        return x.to(out_dtype)
