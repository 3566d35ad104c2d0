"""Memory layout of activations on CPU: oneDNN's native channels-last layout, the same numbers.

PyTorch's CPU convolutions (oneDNN) run in channels-last layout (NHWC / NDHWC) when their input is
channels-last, and their output stays in it, so ReLU, pooling and the next convolution follow without
conversions. In the default NCHW layout oneDNN reorders every activation into its own layout and back.
On the QUICK mri2audio step (translator + attention, forward + backward) channels-last takes ~20% less
CPU time.

:func:`channels_last` gives a network's input that layout on CPU (parameters, checkpoints and CUDA
tensors are left as they are; on a GPU the bench's ``channels_last`` variant decides). The values are
the same up to float rounding (oneDNN's summation order differs between layouts).
"""

from __future__ import annotations

import torch

__all__ = ["channels_last"]

_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x [N, C, (D,) H, W]`` in channels-last layout when it is a floating-point CPU tensor, else ``x``.

    ``clone(memory_format=...)``, not ``contiguous``: with one channel the NCHW strides already count as
    channels-last, and convolutions would then keep NCHW; the clone writes the unambiguous strides.
    """
    fmt = _FORMATS.get(x.dim())
    if fmt is None or x.device.type != "cpu" or not x.dtype.is_floating_point:
        return x
    if x.is_contiguous(memory_format=fmt) and (x.shape[1] > 1 or x.stride(1) == 1):
        return x
    return x.clone(memory_format=fmt)
