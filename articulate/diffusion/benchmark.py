"""Where sampling time goes: the network versus the sampler's own arithmetic.

``profile_sampling`` wraps the denoiser with timers (CUDA-synchronised) and counts the network's
FLOPs for one call with ``torch.utils.flop_counter``; the sampler's elementwise work is counted
analytically (FlopCounterMode only sees matmuls/convolutions): per element a Heun step costs 11 FLOPs
(slope 2, Euler update 2, second slope 2, average 3, update 2), the final Euler step 4, churn 3 more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .heun import HeunSampler
from .long_form import LongFormSampler


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampler_flops(sampler: HeunSampler, numel: int) -> int:
    """Elementwise FLOPs of the sampler's own updates for a latent of ``numel`` elements (all steps)."""
    sig = sampler.sigmas()
    churned = sum(1 for i in range(sampler.num_steps) if sampler.gamma(float(sig[i])) > 0)
    return numel * (11 * (sampler.num_steps - 1) + 4 + 3 * churned)


def network_flops(denoise_fn: Callable[..., torch.Tensor], x: torch.Tensor, sigma: torch.Tensor, **kw) -> int:
    """FLOPs of one denoiser call (matmuls and convolutions; a multiply-add counts 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        denoise_fn(x, sigma, **kw)
    return int(fc.get_total_flops())


@torch.no_grad()
def profile_sampling(
    sampler: HeunSampler | LongFormSampler,
    denoise_fn: Callable[..., torch.Tensor],
    shape: Sequence[int],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    **sampler_kwargs,
) -> dict[str, float]:
    """Runs one sampling and returns wall time, the network's share of it, and the FLOP split.

    For a :class:`LongFormSampler` ``denoise_fn`` takes the window keyword arguments (``cond_fn`` goes
    in ``sampler_kwargs``); the network time then includes the per-window slicing and batching.
    """
    device = torch.device(device)
    state = {"t": 0.0, "calls": 0, "flops": 0, "shape": None, "kw": None}

    def timed(x, sigma, **kw):
        if state["shape"] is None:
            state["shape"], state["kw"] = (x.clone(), sigma.clone()), kw
        _sync(device)
        t0 = time.perf_counter()
        out = denoise_fn(x, sigma, **kw)
        _sync(device)
        state["t"] += time.perf_counter() - t0
        state["calls"] += 1
        state["flops"] += x.shape[0]  # windows*batch per call, turned into FLOPs below
        return out

    _sync(device)
    t0 = time.perf_counter()
    sampler(timed, shape, generator=generator, device=device, **sampler_kwargs)
    _sync(device)
    total = time.perf_counter() - t0
    heun = sampler.sampler if isinstance(sampler, LongFormSampler) else sampler
    (x1, s1), kw1 = state["shape"], state["kw"]
    per_call = network_flops(denoise_fn, x1, s1, **kw1)
    net_flops = per_call * state["flops"] / x1.shape[0]
    numel = 1
    for d in shape:
        numel *= d
    samp_flops = sampler_flops(heun, numel)
    return {
        "total_s": total,
        "network_s": state["t"],
        "network_time_fraction": state["t"] / total,
        "network_calls": state["calls"],
        "network_gflops": net_flops / 1e9,
        "sampler_gflops": samp_flops / 1e9,
        "network_flop_fraction": net_flops / (net_flops + samp_flops),
        "steps": heun.num_steps,
        "s_per_step": total / heun.num_steps,
    }
