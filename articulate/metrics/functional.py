"""Per-image metric functions (no state): Corr2D, RMSE, PSNR and the detail ratio.

Shape rule shared by all three: the **last two dimensions are one 2D image** (a spectrogram
``[F, T]``, an MRI or ultrasound frame ``[H, W]``); every leading dimension is flattened, so the
result is a 1-D tensor with one value per image:

    [H, W] -> [1]      [B, 1, H, W] -> [B]      [B, 1, T, H, W] -> [B * T]

The metric classes (:mod:`articulate.metrics.corr2d`, :mod:`articulate.metrics.image`) average
these per-image values over samples. All three functions are differentiable (Corr2D is also a
loss term of the Lip2AudSpec baseline); half-precision inputs are computed in float32.
"""

from __future__ import annotations

from typing import Literal

import torch

PixelRange = Literal["unit", "signed", "byte"]
PIXEL_RANGES: tuple[str, ...] = ("unit", "signed", "byte")


def _images(x: torch.Tensor, name: str) -> torch.Tensor:
    """``[..., H, W]`` -> ``[N, H*W]`` in at least float32."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions [..., H, W], got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    elif x.dtype in (torch.float16, torch.bfloat16):
        x = x.to(torch.float32)
    return x.reshape(-1, x.shape[-2] * x.shape[-1])


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    p, t = _images(pred, "pred"), _images(target, "target")
    dtype = torch.promote_types(p.dtype, t.dtype)
    return p.to(dtype), t.to(dtype)


def corr2d(pred: torch.Tensor, target: torch.Tensor, undefined: float = float("nan")) -> torch.Tensor:
    """MATLAB ``corr2`` of each 2D image: ``sum(a'b') / sqrt(sum(a'^2) sum(b'^2))``, ``a' = a - mean(a)``.

    Returns one coefficient per image (shape rule in the module docstring). When an image is
    constant the coefficient is undefined (0/0): MATLAB and numpy return NaN, which is the
    default here too; ``undefined=0.0`` scores it as "no linear relation" instead (what the
    :class:`~articulate.metrics.corr2d.Corr2D` metric uses, so that one collapsed prediction
    does not turn a whole validation average into NaN).
    """
    p, t = _pair(pred, target)
    p = p - p.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    num = (p * t).sum(dim=1)
    den2 = (p * p).sum(dim=1) * (t * t).sum(dim=1)
    defined = den2 > 0
    # sqrt and divide only safe values: sqrt'(0) = inf would turn the masked entries' gradients into NaN.
    r = num / torch.sqrt(torch.where(defined, den2, torch.ones_like(den2)))
    return torch.where(defined, r, torch.full_like(r, undefined))


def to_pixels(x: torch.Tensor, pixel_range: PixelRange, clamp: bool = True) -> torch.Tensor:
    """Map images to the 0-255 pixel scale the paper's RMSE/PSNR use.

    ``pixel_range`` says what the input is: ``"unit"`` = [0, 1] (the framework's convention, x*255),
    ``"signed"`` = [-1, 1] (diffusion outputs, (x+1)*127.5), ``"byte"`` = already 0-255.
    ``clamp`` clips to [0, 255] as writing an 8-bit image would (out-of-range generator values
    would otherwise be penalised beyond what any saved image can show). No rounding.
    """
    if pixel_range == "unit":
        y = x * 255.0
    elif pixel_range == "signed":
        y = (x + 1.0) * 127.5
    elif pixel_range == "byte":
        y = x
    else:
        raise ValueError(f"pixel_range must be one of {PIXEL_RANGES}, got {pixel_range!r}")
    return y.clamp(0.0, 255.0) if clamp else y


def _pixel_mse(pred: torch.Tensor, target: torch.Tensor, pixel_range: PixelRange, clamp: bool) -> torch.Tensor:
    p, t = _pair(pred, target)
    p, t = to_pixels(p, pixel_range, clamp), to_pixels(t, pixel_range, clamp)
    return ((p - t) ** 2).mean(dim=1)


def rmse(pred: torch.Tensor, target: torch.Tensor, *, pixel_range: PixelRange, clamp: bool = True) -> torch.Tensor:
    """Root-mean-square error of each 2D image on the 0-255 pixel scale (see :func:`to_pixels`)."""
    return torch.sqrt(_pixel_mse(pred, target, pixel_range, clamp))


def psnr(pred: torch.Tensor, target: torch.Tensor, *, pixel_range: PixelRange, clamp: bool = True) -> torch.Tensor:
    """PSNR in dB of each 2D image with peak 255: ``10 log10(255^2 / MSE)``; identical images give +inf."""
    mse = _pixel_mse(pred, target, pixel_range, clamp)
    return 10.0 * torch.log10(255.0**2 / mse)


def detail_ratio(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fine detail of each 2D image relative to the target's: ``rms(hp(pred)) / rms(hp(target))`` with ``hp`` the
    image minus its 3 x 3 box average (edge pixels left out). Speckle and sharp edges make an ultrasound frame's
    fine detail; a conditional mean (the mean frame, a regression) is smooth (ratio well below 1), a sample of
    the data's own law has the target's (about 1). Beside a distance to the truth it tells a model that moves
    the tongue right from one that has stopped drawing ultrasound. NaN where the target has no detail."""
    p, t = _pair(pred, target)
    side = pred.shape[-2:]

    def high_pass(x: torch.Tensor) -> torch.Tensor:
        img = x.reshape(-1, 1, *side)
        blur = torch.nn.functional.avg_pool2d(img, 3, stride=1)
        return (img[..., 1:-1, 1:-1] - blur).flatten(1)

    hp_p, hp_t = high_pass(p), high_pass(t)
    num, den = hp_p.pow(2).mean(dim=1).sqrt(), hp_t.pow(2).mean(dim=1).sqrt()
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.full_like(den, float("nan")))


__all__ = ["corr2d", "detail_ratio", "rmse", "psnr", "to_pixels", "PixelRange", "PIXEL_RANGES"]
