"""Memory-lean training of Conv3d -> BatchNorm3d -> LeakyReLU (-> MaxPool3d) blocks, the same numbers.

Lip2AudSpec runs its CNN on every 5-frame slice of every sequence: at the paper's size (batch 16 + 16 pair
partners, 22 slices, 128 x 128 px) the first block alone keeps ~27 GB for the backward pass (conv output,
normalised output, activation and pool indices of 704 slices), more than most machines have.

:func:`lean_block` computes one block in chunks of slices and keeps only its input for the backward
pass, which recomputes the convolution chunk by chunk. Batch normalisation still uses the statistics of
the *whole* batch, exactly as ``nn.BatchNorm3d`` in training mode (chunking the batch would change them):

* forward: one pass of the convolution over the chunks collects the per-channel mean and variance
  (chunk moments merged in float64, Chan et al.) and the pooled extreme of each window; normalisation is
  affine and increasing (or decreasing where gamma < 0) and LeakyReLU increasing, so the max-pool of the
  block's output is the block applied to each window's max (min where gamma < 0): the output is computed
  on the pooled values, never on the full-size activation;
* backward: two passes (the batch-norm gradient needs two per-channel sums over the whole batch before
  any input gradient: ``sum dL/dz`` and ``sum dL/dz * x_hat``), each recomputing the convolution per chunk.

The running statistics are updated once per forward, as ``nn.BatchNorm3d`` does. The values match the
standard modules up to float rounding (summation order); the price is ~1.7x the convolutions' compute
(one forward in the forward pass, two forwards and one backward in the backward pass).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["lean_block", "lean_sequential"]


def _conv(x: torch.Tensor, conv: nn.Conv3d, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.conv3d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _pool(x: torch.Tensor, pool: nn.MaxPool3d | None) -> torch.Tensor:
    if pool is None:
        return x
    return F.max_pool3d(x, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)


def _affine(gamma: torch.Tensor, beta: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, dtype) -> tuple:
    """Per-channel scale and shift of the normalisation (computed in float64), shaped for [N, C, D, H, W]."""
    a = gamma.double() * invstd
    c = beta.double() - mean * a
    view = (1, -1, 1, 1, 1)
    return a.to(dtype).view(view), c.to(dtype).view(view)


class _LeanBlock(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, conv, bn, slope, pool, chunk):
        n = x.shape[0]
        dims = (0, 2, 3, 4)
        sign = torch.where(gamma >= 0, 1.0, -1.0).to(x.dtype).view(1, -1, 1, 1, 1)
        out = None
        count, mean, m2 = 0, None, None
        for i in range(0, n, chunk):
            y = _conv(x[i:i + chunk], conv, weight, bias)
            # chunk moments, merged exactly (Chan et al.) in float64
            k = y.numel() // y.shape[1]
            m = y.mean(dim=dims, dtype=torch.float64)
            s = ((y - m.to(y.dtype).view(1, -1, 1, 1, 1)) ** 2).sum(dim=dims, dtype=torch.float64)
            if mean is None:
                count, mean, m2 = k, m, s
            else:
                delta = m - mean
                total = count + k
                mean = mean + delta * (k / total)
                m2 = m2 + s + delta**2 * (count * k / total)
                count = total
            ext = _pool(y * sign, pool) * sign  # each window's max (min where gamma < 0)
            if out is None:
                out = x.new_empty((n, *ext.shape[1:]))
            out[i:i + chunk] = ext
            del y, ext
        var = m2 / count
        invstd = torch.rsqrt(var + bn.eps)
        if bn.training and bn.track_running_stats:
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                f = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
                unbiased = var * (count / max(count - 1, 1))
                bn.running_mean.mul_(1 - f).add_(mean.to(bn.running_mean.dtype), alpha=f)
                bn.running_var.mul_(1 - f).add_(unbiased.to(bn.running_var.dtype), alpha=f)
        a, c = _affine(gamma, beta, mean, invstd, x.dtype)
        out.mul_(a).add_(c)
        F.leaky_relu_(out, slope)
        ctx.save_for_backward(x, weight, bias if bias is not None else x.new_empty(0), gamma, beta)
        ctx.stats = (mean, invstd, count)
        ctx.cfg = (conv, slope, pool, chunk, bias is not None)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, weight, bias, gamma, beta = ctx.saved_tensors
        mean, invstd, count = ctx.stats
        conv, slope, pool, chunk, has_bias = ctx.cfg
        bias = bias if has_bias else None
        n, dims = x.shape[0], (0, 2, 3, 4)
        a, c = _affine(gamma, beta, mean, invstd, x.dtype)
        mu, inv = mean.to(x.dtype).view(1, -1, 1, 1, 1), invstd.to(x.dtype).view(1, -1, 1, 1, 1)

        def dz_of(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
            """dL/dz of the normalised pre-activation z = a y + c, through LeakyReLU and the pool."""
            with torch.enable_grad():
                z = (y * a + c).requires_grad_()
                (dz,) = torch.autograd.grad(_pool(F.leaky_relu(z, slope), pool), z, g)
            return dz

        # pass 1: the two per-channel sums of the batch-norm gradient
        sum_dz = torch.zeros(gamma.shape[0], dtype=torch.float64, device=x.device)
        sum_dzx = torch.zeros_like(sum_dz)
        for i in range(0, n, chunk):
            with torch.no_grad():
                y = _conv(x[i:i + chunk], conv, weight, bias)
            dz = dz_of(y, dout[i:i + chunk])
            xhat = (y - mu) * inv
            sum_dz += dz.sum(dim=dims, dtype=torch.float64)
            sum_dzx += (dz * xhat).sum(dim=dims, dtype=torch.float64)
            del y, dz, xhat
        k1 = (sum_dz / count).to(x.dtype).view(1, -1, 1, 1, 1)
        k2 = (sum_dzx / count).to(x.dtype).view(1, -1, 1, 1, 1)
        scale = (gamma.double() * invstd).to(x.dtype).view(1, -1, 1, 1, 1)

        # pass 2: dL/dy = gamma invstd (dz - mean(dz) - x_hat mean(dz x_hat)), then the convolution's backward
        need_x = ctx.needs_input_grad[0]
        dx = torch.empty_like(x) if need_x else None
        dw = torch.zeros_like(weight)
        db = torch.zeros_like(bias) if bias is not None else None
        for i in range(0, n, chunk):
            with torch.enable_grad():
                xc = x[i:i + chunk].detach().requires_grad_(need_x)
                wd = weight.detach().requires_grad_()
                bd = bias.detach().requires_grad_() if bias is not None else None
                y = _conv(xc, conv, wd, bd)
                yv = y.detach()
                dz = dz_of(yv, dout[i:i + chunk])
                dy = (dz - k1 - (yv - mu) * inv * k2) * scale
                inputs = [t for t in (xc if need_x else None, wd, bd) if t is not None]
                grads = torch.autograd.grad(y, inputs, dy)
            grads = list(grads)
            if need_x:
                dx[i:i + chunk] = grads.pop(0)
            dw += grads.pop(0)
            if db is not None:
                db += grads.pop(0)
            del y, yv, dz, dy, grads
        dgamma = sum_dzx.to(gamma.dtype)
        dbeta = sum_dz.to(beta.dtype)
        return dx, dw, db, dgamma, dbeta, None, None, None, None, None


def lean_block(x: torch.Tensor, conv: nn.Conv3d, bn: nn.BatchNorm3d, act: nn.LeakyReLU,
               pool: nn.MaxPool3d | None, chunk: int) -> torch.Tensor:
    """``pool(act(bn(conv(x))))`` in training mode, memory-lean (see the module docstring)."""
    return _LeanBlock.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, conv, bn, float(act.negative_slope), pool,
                            int(chunk))


def _leanable(layers: list[nn.Module], i: int) -> bool:
    return (i + 2 < len(layers) and isinstance(layers[i], nn.Conv3d) and isinstance(layers[i + 1], nn.BatchNorm3d)
            and isinstance(layers[i + 2], nn.LeakyReLU) and layers[i + 1].affine and layers[i + 1].track_running_stats
            and not layers[i + 2].inplace)


def lean_sequential(seq: nn.Sequential, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """``seq(x)`` with every Conv3d-BatchNorm3d-LeakyReLU(-MaxPool3d) run of ``seq`` as a :func:`lean_block`
    (other layers, e.g. dropout, as they are, in the same order: the same random draws)."""
    layers = list(seq)
    i = 0
    while i < len(layers):
        if _leanable(layers, i):
            pool = layers[i + 3] if i + 3 < len(layers) and isinstance(layers[i + 3], nn.MaxPool3d) else None
            x = lean_block(x, layers[i], layers[i + 1], layers[i + 2], pool, chunk)
            i += 4 if pool is not None else 3
        else:
            x = layers[i](x)
            i += 1
    return x
