"""Pure-performance changes to networks compute what the plain formulation computes (outputs, gradients,
batch-norm statistics), checked against independent re-implementations with the same parameters.

float64 checks the formulation itself (any difference would be a semantic change, not rounding);
float32 checks that the fast paths stay within float tolerance of the float64 reference.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from articulate.networks.layout import channels_last
from articulate.networks.mri2audio.attention import ResidualAttention
from articulate.networks.mri2audio.lean_cnn import lean_block
from articulate.networks.mri2audio.lip2audspec import Lip2AudSpecNet
from articulate.networks.mri2audio.translator import HeterogeneousTranslator


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


# -- references: the paper's order of operations, default layout, module by module --------------------
def reference_encode(f: HeterogeneousTranslator, x: torch.Tensor):
    h = x - x.mean(dim=2, keepdim=True) if f.subtract_mean_frame else x
    for i, conv in enumerate(f.encoder):
        h = F.conv3d(h, conv.weight, conv.bias, padding=1)
        if i < len(f.encoder) - 1:
            h = F.relu(h)  # ReLU before the pool, as the paper draws it
        # time halved while there is something to halve, space while it stays >= the latent grid
        ks = 2 if min(h.shape[-2:]) // 2 >= f.latent_size else 1
        h = F.max_pool3d(h, (2 if h.shape[2] >= 2 else 1, ks, ks))
    h = h.mean(dim=2)
    if h.shape[-2:] != (f.latent_size, f.latent_size):
        h = F.adaptive_avg_pool2d(h, f.latent_size)
    m = f.utterance_channels
    return h[:, :m], h[:, m:2 * m].clamp(-f.logvar_limit, f.logvar_limit), h[:, 2 * m:]


def reference_translator(f: HeterogeneousTranslator, x: torch.Tensor) -> torch.Tensor:
    mu, _, s = reference_encode(f, x)
    h = torch.cat([mu, s], dim=1)
    for i, d in enumerate(f.decoder):
        h = F.conv_transpose2d(h, d.weight, d.bias, stride=2, padding=1)
        if i < len(f.decoder) - 1:
            h = F.relu(h)
    return torch.sigmoid(h)


def reference_attention(a: ResidualAttention, x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    d = (x[:, :, 1:] - x[:, :, :-1]).abs()
    d = torch.cat([d[:, :, :1], d], dim=2).transpose(1, 2).reshape(-1, c, h, w)
    for conv in a.encoder:
        d = F.relu(F.conv2d(d, conv.weight, conv.bias, stride=2, padding=1))
    for deconv in a.decoder:
        d = F.relu(F.conv_transpose2d(d, deconv.weight, deconv.bias, stride=2, padding=1))
    m = torch.sigmoid(F.conv2d(d, a.head.weight, a.head.bias)).reshape(b, t, c, h, w).transpose(1, 2)
    return m * x


def _translator_and_attention(dtype):
    torch.manual_seed(0)
    f = HeterogeneousTranslator(encoder_channels=(8, 16, 16, 24), decoder_channels=(16, 8), utterance_channels=4,
                                subject_channels=16, latent_size=4, subtract_mean_frame=True).to(dtype).eval()
    a = ResidualAttention(channels=(8, 16, 16)).to(dtype)
    return f, a


def _grads(fn, params, x):
    x = x.clone().requires_grad_()
    out = fn(x)
    target = torch.linspace(0, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    ((out - target) ** 2).sum().backward()
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
def test_translator_and_attention_match_the_plain_formulation(dtype, tol):
    """Pool-before-ReLU (exact: max and ReLU commute) and channels-last CPU layout change nothing but rounding."""
    f, a = _translator_and_attention(dtype)
    x = torch.rand(3, 1, 10, 32, 32, dtype=torch.float64)
    params = [*f.parameters(), *a.parameters()]
    fast = _grads(lambda v: f(a(v.to(dtype))[0]).mel, params, x)
    f64, a64 = copy.deepcopy(f).double(), copy.deepcopy(a).double()
    params64 = [*f64.parameters(), *a64.parameters()]
    ref = _grads(lambda v: reference_translator(f64, reference_attention(a64, v)), params64, x)
    assert _rel(fast[0], ref[0]) < tol
    assert _rel(fast[1], ref[1]) < tol  # input gradient (what A's upstream would receive)
    worst = max(_rel(g, r) for g, r in zip(fast[2], ref[2]))
    assert worst < tol * 10, worst
    # the encoder's latent (mu, logvar, subject) too
    for got, want in zip(f.encode(x.to(dtype)), reference_encode(f64, x)):
        assert _rel(got, want) < tol


def test_channels_last_gives_unambiguous_strides_and_same_values():
    x = torch.rand(2, 1, 4, 8, 8)
    y = channels_last(x)
    assert y.stride(1) == 1 and torch.equal(x, y)  # one channel: NCDHW strides would count as channels-last
    z = torch.rand(2, 3, 8, 8)
    assert channels_last(z).is_contiguous(memory_format=torch.channels_last) and torch.equal(channels_last(z), z)
    assert channels_last(torch.arange(4).reshape(1, 1, 2, 2)).dtype == torch.int64  # left alone


def _lean_net(dtype, chunk=None):
    torch.manual_seed(0)
    net = Lip2AudSpecNet(image_size=(32, 32), conv_channels=(4, 4, 4, 8, 8, 8, 8), lstm_hidden=16, dense=32,
                         out_shape=(8, 8), memory_chunk=chunk).to(dtype)
    with torch.no_grad():  # gammas of both signs: the block's min/max selection must follow them
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.uniform_(-1.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 2e-4)])
def test_lip2audspec_memory_lean_cnn_is_the_standard_cnn(dtype, tol):
    """Chunked, recomputing CNN: same output, input and parameter gradients (dropout on, same draws) and the
    same running batch-norm statistics as nn.Sequential with whole-batch statistics."""
    plain = _lean_net(dtype)
    lean = copy.deepcopy(plain)
    lean.memory_chunk = 7  # 3 sequences x 8 slices = 24 samples: chunks of 7, 7, 7, 3
    x = torch.rand(3, 1, 12, 32, 32, dtype=dtype)
    target = torch.rand(3, 1, 8, 8, dtype=dtype)
    results = []
    for net in (plain, lean):
        net.train()
        torch.manual_seed(5)
        xx = x.clone().requires_grad_()
        loss = ((net(xx) - target) ** 2).sum()
        loss.backward()
        results.append((loss.detach(), xx.grad, dict(net.named_parameters()), dict(net.named_buffers())))
    (l0, gx0, p0, b0), (l1, gx1, p1, b1) = results
    assert _rel(l1, l0) < tol and _rel(gx1, gx0) < tol
    scale = max(float(p.grad.abs().max()) for p in p0.values())
    zero = 1e-9 if dtype == torch.float64 else 1e-5
    before_bn = {f"cnn.{i}.bias" for i, m in enumerate(plain.cnn) if isinstance(m, torch.nn.Conv3d)} | {"head.3.bias"}
    for name, p in p0.items():
        if name in before_bn:
            # a bias right before batch norm has zero gradient (the mean removes it): both must say so
            assert float(p.grad.abs().max()) < zero * scale and float(p1[name].grad.abs().max()) < zero * scale
        else:
            assert _rel(p1[name].grad, p.grad) < tol * 10, name
    for name, b in b0.items():
        assert _rel(b1[name].double(), b.double()) < tol, name
    # eval mode uses the modules as they are (with the running statistics both updated alike)
    lean.eval(), plain.eval()
    with torch.no_grad():
        assert _rel(lean(x), plain(x)) < tol


def test_lean_block_with_and_without_pool_and_chunk_sizes():
    torch.manual_seed(1)
    conv, bn = torch.nn.Conv3d(2, 3, 3, padding=1).double(), torch.nn.BatchNorm3d(3).double()
    act, pool = torch.nn.LeakyReLU(0.3), torch.nn.MaxPool3d((1, 2, 2))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.2, -0.7, 0.4], dtype=torch.float64))
    x = torch.randn(5, 2, 3, 8, 8, dtype=torch.float64)
    for p in (pool, None):
        ref_bn = copy.deepcopy(bn)
        xr = x.clone().requires_grad_()
        y = ref_bn(conv(xr))
        y = act(y) if p is None else p(act(y))
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape).sin()).sum().backward()
        ref = (y.detach(), xr.grad, conv.weight.grad.clone())
        conv.weight.grad = conv.bias.grad = None
        for chunk in (1, 2, 5, 64):
            b = copy.deepcopy(bn)
            xl = x.clone().requires_grad_()
            out = lean_block(xl, conv, b, act, p, chunk)
            (out * torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape).sin()).sum().backward()
            assert _rel(out, ref[0]) < 1e-12 and _rel(xl.grad, ref[1]) < 1e-12
            assert _rel(conv.weight.grad, ref[2]) < 1e-12 and _rel(b.weight.grad, ref_bn.weight.grad) < 1e-12
            assert _rel(b.running_mean, ref_bn.running_mean) < 1e-12 and _rel(b.running_var, ref_bn.running_var) < 1e-12
            assert int(b.num_batches_tracked) == int(ref_bn.num_batches_tracked) == 1
            conv.weight.grad = conv.bias.grad = None


def test_translator_matches_a_plain_formulation():
    """conv -> ReLU -> pool per hidden layer (computed as conv -> pool -> ReLU), time pooled while frames are left."""
    torch.manual_seed(0)
    f = HeterogeneousTranslator(encoder_channels=[8, 8, 12], decoder_channels=[8, 8], utterance_channels=2,
                                subject_channels=8, latent_size=4).double().train()
    x = torch.rand(2, 1, 6, 16, 16, dtype=torch.float64) * 3 + 1
    h = x
    for i, conv in enumerate(f.encoder):
        h = F.conv3d(h, conv.weight, conv.bias, padding=1)
        if i < len(f.encoder) - 1:
            h = F.relu(h)
        ks = 2 if min(h.shape[-2:]) // 2 >= 4 else 1
        h = F.max_pool3d(h, (2 if h.shape[2] >= 2 else 1, ks, ks))
    h = h.mean(dim=2)
    mu, _, s = f.encode(x)
    torch.testing.assert_close(mu, h[:, :2])
    torch.testing.assert_close(s, h[:, 4:])


def test_attention_init_options():
    """He init keeps the residual's scale through A (the default shrinks it); init_mask sets the start mask."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 5, 32, 32)
    spread = {}
    for he in (False, True):
        torch.manual_seed(1)
        a = ResidualAttention(channels=(8, 16, 32), kaiming_init=he)
        spread[he] = float(a(x)[1].std())
    assert spread[True] > 10 * spread[False]
    a = ResidualAttention(channels=(8, 16), init_mask=0.2)
    with torch.no_grad():
        for m in a.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m is not a.head:
                m.weight.zero_()
                m.bias.zero_()
    torch.testing.assert_close(a(x)[1], torch.full_like(x, 0.2))
    with pytest.raises(ValueError, match="init_mask"):
        ResidualAttention(init_mask=1.5)


def test_attention_dims_closed_pixels_towards_black():
    """x' = a x (the paper): what F sees is the mask times the frame."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 5, 16, 16)
    dark = ResidualAttention(channels=(4, 8)).eval()
    xd, md = dark(x)
    torch.testing.assert_close(xd, md * x)

