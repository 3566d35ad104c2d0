r"""Long-form ("cyclic") sampling: a video of any length from a denoiser trained on W-frame windows.

The paper names "cyclic denoising sampling" without defining it. Ours is defined as follows.

Let the full latent be ``x`` with T frames, the window length W and the hop H (``0 < H < W``).

* **Window grid with a cyclic offset.** At sampling step i the grid offset is
  ``phi_i = (i * shift) mod H`` (``shift`` defaults to an integer near ``H / golden ratio`` that is
  coprime with H, so the offsets run through all H residues in H steps and consecutive offsets are far
  apart). The windows of step i start at ``phi_i + k H`` (k integer) clamped to ``[0, T - W]``, keeping
  every window that intersects ``[0, T)`` once, minus inner windows made redundant by the clamping
  (neighbours still within one hop) (:func:`window_starts`). Consecutive starts differ by at
  most H < W, so the windows cover every frame, and every window has exactly W frames (the length the
  network was trained on). Because the offsets rotate, no frame sits at a window border at every step.
* **Blended denoiser.** Every call ``D(x; sigma)`` inside step i runs the denoiser on each window
  ``x[s_k : s_k + W]`` with the condition sliced to that window by the caller's ``cond_fn(s_k, s_k + W)``
  (batched over windows), and blends the window estimates into one full-length estimate
  ``D(x)[t] = sum_k w(t - s_k) D_k[t - s_k] / sum_k w(t - s_k)`` with the raised-cosine taper
  ``w(j) = sin^2(pi (j + 1/2) / W)`` (or a triangular one): positive everywhere, so frames at the video
  ends (one window) are defined, and small at window edges, where a window lacks context.
* **Full-length update.** The Heun step (EDM Algorithm 2, churn included) is taken on the full latent
  with this blended D; both evaluations of a step use that step's grid. Windows therefore exchange
  information at every denoising step through the shared latent, which is what removes seams: each
  window's next input already contains its neighbours' denoised content in the overlap.

When ``T <= W`` the denoiser is called once on the whole latent (no slicing, no blending), so the
result equals :class:`~articulate.diffusion.heun.HeunSampler` bit for bit for the same noise.

**Bounded memory.** Windows go through the network in chunks (``max_windows_per_call``, or as many as fit
``memory_budget_mb``, measured on the first window of a call: :mod:`articulate.utils.memory`),
and each chunk's estimates are blended into the full-length sums at once, so what grows with the length of the
speech is only the latent, the sampler's few full-length tensors and the windows' cached conditions (every step
updates the whole latent: that is what removes seams, and why frames cannot be streamed out before the last step),
not the network's activations; measured growth per minute of speech: docs/results/wav2uti.md. Chunking changes
the result only by the rounding of batched network calls.

Seams are measured by :func:`seam_score`: the mean absolute frame-to-frame change at window borders
divided by the mean change elsewhere (1 = invisible borders).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from articulate.utils.memory import allocated_mb, measure_peak_mb

from .heun import HeunSampler

# Network memory a long-form call may use for a chunk of windows (MB): fits a laptop beside the model.
DEFAULT_MEMORY_BUDGET_MB = 2048.0

CondFn = Callable[[int, int], dict[str, Any]]


def window_starts(T: int, window: int, hop: int, offset: int = 0) -> list[int]:
    """Sorted unique starts ``offset + k hop`` clamped to ``[0, T - window]`` whose windows meet ``[0, T)``;
    consecutive starts are at most ``hop`` apart, the first is 0 and the last ``T - window``."""
    if T <= window:
        return [0]
    if not 0 < hop <= window:
        raise ValueError(f"hop must be in (0, window], got hop={hop}, window={window}")
    offset %= hop
    k0 = -((window - 1 + offset) // hop)  # smallest k whose window [offset+k hop, +window) reaches frame 0
    starts = set()
    k = k0
    while offset + k * hop < T:
        starts.add(min(max(offset + k * hop, 0), T - window))
        k += 1
    ordered = sorted(starts)
    # Clamping can leave a window right beside the first/last one (e.g. starts 31 and 32): drop an inner
    # window when its neighbours are still at most one hop apart, which saves a network pass per step.
    kept = [ordered[0]]
    for j in range(1, len(ordered) - 1):
        if ordered[j + 1] - kept[-1] > hop:
            kept.append(ordered[j])
    if len(ordered) > 1:
        kept.append(ordered[-1])
    return kept


def taper(window: int, kind: str = "hann", dtype=torch.float64, device=None) -> torch.Tensor:
    """Per-frame blending weight of a window, ``[window]``, strictly positive."""
    j = torch.arange(window, dtype=dtype, device=device) + 0.5
    if kind == "hann":
        return torch.sin(math.pi * j / window) ** 2
    if kind == "triangular":
        return 1.0 - (2.0 * j / window - 1.0).abs()
    if kind == "uniform":
        return torch.ones(window, dtype=dtype, device=device)
    raise ValueError(f"taper must be 'hann', 'triangular' or 'uniform', got {kind!r}")


def _default_shift(hop: int) -> int:
    if hop <= 1:
        return 0
    target = hop / ((1 + math.sqrt(5)) / 2)
    cands = sorted(range(1, hop), key=lambda s: (abs(s - target), s))
    return next(s for s in cands if math.gcd(s, hop) == 1)


def slice_frames(frame_aligned: dict[str, torch.Tensor | None], static: dict[str, Any] | None = None,
                 rate: float = 1.0, dim: int = 1) -> CondFn:
    """A ``cond_fn`` for frame-aligned conditions: slices each tensor of ``frame_aligned`` (e.g. ``cond``
    ``[B, L, C]`` and ``cond_mask`` ``[B, L]``) along ``dim`` to the window; ``rate`` = condition steps
    per video frame (1 for frame-aligned features). ``static`` entries (e.g. text tokens) pass unchanged.
    Video-shaped inputs (a low-res video ``[B, C, T, H, W]``) need ``dim=2``: make a second slicer and
    merge the two dicts in a small ``cond_fn``."""
    static = dict(static or {})

    def fn(start: int, stop: int) -> dict[str, Any]:
        a, b = int(math.floor(start * rate + 1e-9)), int(math.ceil(stop * rate - 1e-9))
        out = dict(static)
        for k, v in frame_aligned.items():
            out[k] = None if v is None else v.narrow(dim, a, min(b, v.shape[dim]) - a)
        return out

    return fn


def _batchable(kwargs_list: list[dict[str, Any]], B: int) -> bool:
    first = kwargs_list[0]
    for kw in kwargs_list[1:]:
        if kw.keys() != first.keys():
            return False
        for k, v in kw.items():
            u = first[k]
            if isinstance(v, torch.Tensor) != isinstance(u, torch.Tensor):
                return False
            if isinstance(v, torch.Tensor) and (v.shape != u.shape or v.ndim == 0 or v.shape[0] != B):
                return False
            if not isinstance(v, torch.Tensor) and v is not u and v != u:
                return False
    return True


class LongFormSampler:
    """Samples ``[B, C, T, H, W]`` videos of any T with a windowed denoiser (see the module docstring).

    ``sampler``: the :class:`HeunSampler` whose schedule and churn are used. ``window``: frames per
    denoiser call (the training clip length). ``hop``: window stride (default ``window // 2``).
    ``shift``: grid-offset increment per step (default: see module docstring; 0 disables the rotation).
    ``max_windows_per_call``: windows batched into one network call; None: as many as fit
    ``memory_budget_mb`` (the network's extra memory per window is measured on the first call).
    """

    def __init__(self, sampler: HeunSampler, window: int = 15, hop: int | None = None, shift: int | None = None,
                 taper: str = "hann", time_dim: int = 2, max_windows_per_call: int | None = None,
                 memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB):
        self.sampler = sampler
        self.window = int(window)
        self.hop = int(hop) if hop is not None else max(1, self.window // 2)
        if not 0 < self.hop < self.window:
            raise ValueError(f"hop must satisfy 0 < hop < window (overlap is what removes seams), got hop={self.hop}, window={self.window}")
        self.shift = _default_shift(self.hop) if shift is None else int(shift)
        self.taper_kind = taper
        self.time_dim = time_dim
        if max_windows_per_call is not None and int(max_windows_per_call) < 1:
            raise ValueError(f"max_windows_per_call must be >= 1, got {max_windows_per_call}")
        if not float(memory_budget_mb) > 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self.max_windows_per_call = max_windows_per_call
        self.memory_budget_mb = float(memory_budget_mb)
        self.window_mb: float | None = None  # measured extra memory of one window's network call
        self.last_nfe = 0  # network calls made by the last __call__

    @property
    def num_steps(self) -> int:
        return self.sampler.num_steps

    def offset(self, step: int) -> int:
        return (step * self.shift) % self.hop

    def starts(self, T: int, step: int) -> list[int]:
        return window_starts(T, self.window, self.hop, self.offset(step))

    def blended_denoise(self, denoise_fn: Callable[..., torch.Tensor], x: torch.Tensor, sigma: torch.Tensor,
                        cond_fn: CondFn | None, step: int) -> torch.Tensor:
        """The full-length ``D(x; sigma)`` of step ``step``, blended from the windows' estimates."""
        td = self.time_dim % x.ndim
        T, B = x.shape[td], x.shape[0]
        if T <= self.window:
            self.last_nfe += 1
            return denoise_fn(x, sigma, **(cond_fn(0, T) if cond_fn else {}))
        starts = self.starts(T, step)
        W = self.window
        kws = [cond_fn(s, s + W) if cond_fn else {} for s in starts]
        w = taper(W, self.taper_kind, dtype=x.dtype, device=x.device)
        shape = [1] * x.ndim
        shape[td] = W
        w = w.reshape(shape)
        num = torch.zeros_like(x)
        den_shape = [1] * x.ndim
        den_shape[td] = T
        den = torch.zeros(den_shape, dtype=x.dtype, device=x.device)

        def run(idx: list[int]) -> None:
            xs = torch.cat([x.narrow(td, starts[j], W) for j in idx], dim=0)
            sig = sigma.reshape(-1).expand(B).repeat(len(idx))
            kw = {k: (torch.cat([kws[j][k] for j in idx], dim=0) if isinstance(v, torch.Tensor) else v)
                  for k, v in kws[idx[0]].items()}
            d = denoise_fn(xs, sig, **kw)
            self.last_nfe += 1
            for j, dj in zip(idx, d.split(B, dim=0)):  # blended at once: no window's estimate is kept
                num.narrow(td, starts[j], W).add_(w * dj.to(x.dtype))
                den.narrow(td, starts[j], W).add_(w)

        first = 0
        if self.max_windows_per_call is None and self.window_mb is None:
            # CUDA: the measured peak; elsewhere what the pass allocates in all (an upper bound: a resident-set
            # reading misses memory the allocator already held, which made the chunks far too large)
            if x.device.type == "cuda":
                mb = measure_peak_mb(lambda: run([0]), x.device)[1]
            else:
                mb = allocated_mb(lambda: run([0]))[1]
            self.window_mb = max(float(mb or 0.0), 1.0)
            first = 1
        chunk = self.windows_per_call() if _batchable(kws, B) else 1
        for c0 in range(first, len(starts), chunk):
            run(list(range(c0, min(c0 + chunk, len(starts)))))
        return num.div_(den)

    def windows_per_call(self) -> int:
        """Windows batched per network call: the given maximum, or as many as fit the memory budget."""
        if self.max_windows_per_call is not None:
            return int(self.max_windows_per_call)
        return max(1, int(self.memory_budget_mb // (self.window_mb or self.memory_budget_mb)))

    @torch.no_grad()
    def __call__(self, denoise_fn: Callable[..., torch.Tensor], shape_or_latents: Sequence[int] | torch.Tensor,
                 cond_fn: CondFn | None = None, generator: torch.Generator | None = None, device=None,
                 callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """``denoise_fn(x_window, sigma[Bw], **cond_fn(start, stop))`` -> D of the window.

        ``cond_fn(start, stop)`` is evaluated once per distinct window during one call (cached), so it
        may run a condition encoder/fusion network. Returns float32 (or the latents' dtype).
        """
        s = self.sampler
        if isinstance(shape_or_latents, torch.Tensor):
            out_dtype, device = shape_or_latents.dtype, shape_or_latents.device
        else:
            out_dtype = torch.float32
        x = s.init_latents(shape_or_latents, generator, device)
        sigmas = s.sigmas(x.device)
        self.last_nfe = 0
        if cond_fn is not None:  # the condition of a window does not change across steps: compute it once
            cache: dict[tuple[int, int], dict[str, Any]] = {}
            user_fn = cond_fn

            def cond_fn(a: int, b: int) -> dict[str, Any]:
                if (a, b) not in cache:
                    cache[(a, b)] = user_fn(a, b)
                return cache[(a, b)]

        for i in range(s.num_steps):
            fn = lambda xx, sig, _i=i: self.blended_denoise(denoise_fn, xx, sig, cond_fn, _i)  # noqa: E731
            x, _ = s.step(fn, x, i, sigmas, generator)
            if callback is not None:
                callback(i, x)
        return x.to(out_dtype)


@torch.no_grad()
def sample_independent_windows(sampler: HeunSampler, denoise_fn: Callable[..., torch.Tensor],
                               shape: Sequence[int], window: int, hop: int | None = None,
                               cond_fn: CondFn | None = None, generator: torch.Generator | None = None,
                               device=None, time_dim: int = 2) -> torch.Tensor:
    """The naive baseline: windows on the offset-0 grid sampled independently and concatenated, frames
    ``[s_k, s_{k+1})`` taken from window k. Exists to show (and test) the seams long-form sampling removes."""
    hop = window if hop is None else hop
    shape = list(shape)
    td = time_dim % len(shape)
    T = shape[td]
    starts = window_starts(T, window, hop, 0)
    out = torch.zeros(shape, dtype=torch.float32, device=device)
    for k, st in enumerate(starts):
        wshape = list(shape)
        wshape[td] = min(window, T)
        kw = cond_fn(st, st + wshape[td]) if cond_fn else {}
        v = sampler(lambda xx, sig, kw=kw: denoise_fn(xx, sig, **kw), wshape, generator=generator, device=device)
        end = starts[k + 1] if k + 1 < len(starts) else T
        out.narrow(td, st, end - st).copy_(v.narrow(td, 0, end - st))
    return out


def seam_score(video: torch.Tensor | np.ndarray, window: int, hop: int, time_dim: int = -3, offset: int = 0) -> float:
    """Mean |frame_t - frame_{t-1}| at window borders / the same mean at all other t >= 1.

    Borders are the starts (except the first) of the grid :func:`window_starts` ``(T, window, hop, offset)``,
    i.e. where the naive concatenation switches windows. ``time_dim`` defaults to -3, which fits both
    ``[T, H, W]`` and ``[B, C, T, H, W]``. About 1 means no visible seams.
    """
    v = torch.as_tensor(np.asarray(video) if not isinstance(video, torch.Tensor) else video).to(torch.float64)
    v = v.movedim(time_dim % v.ndim, 0)
    T = v.shape[0]
    diffs = (v[1:] - v[:-1]).abs().reshape(T - 1, -1).mean(dim=1)  # diffs[t-1] = change into frame t
    borders = [s for s in window_starts(T, window, hop, offset)[1:]]
    if not borders:
        raise ValueError(f"a video of {T} frames has no window borders for window={window}, hop={hop}")
    is_border = torch.zeros(T - 1, dtype=torch.bool)
    is_border[[b - 1 for b in borders]] = True
    inside = diffs[~is_border]
    return float(diffs[is_border].mean() / inside.mean())
