"""Long-form (cyclic window) sampling: grid, blending, reduction to the plain sampler, and seams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from articulate.diffusion import (
    EDMPrecond,
    HeunSampler,
    LongFormSampler,
    sample_independent_windows,
    seam_score,
    slice_frames,
    window_starts,
)
from articulate.diffusion.long_form import _default_shift, taper
from articulate.networks.wav2uti.unet import VideoUNet

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)



@pytest.mark.parametrize("T,W,H", [(40, 15, 7), (48, 16, 8), (17, 16, 5), (100, 12, 11)])
def test_window_grid_covers_with_full_windows(T, W, H):
    for off in range(H):
        st = window_starts(T, W, H, off)
        assert st == sorted(set(st)) and st[0] == 0 and st[-1] == T - W
        assert all(0 <= s <= T - W for s in st)
        assert all(b - a <= H for a, b in zip(st, st[1:]))  # gaps < W: every frame covered
        covered = np.zeros(T, bool)
        for s in st:
            covered[s:s + W] = True
        assert covered.all()
    assert window_starts(10, 15, 7) == [0]


@pytest.mark.parametrize("hop", [2, 5, 7, 8, 12])
def test_grid_offsets_rotate_through_all_residues(hop):
    lf = LongFormSampler(HeunSampler(num_steps=4), window=hop + 3, hop=hop)
    assert math.gcd(lf.shift, hop) == 1
    assert sorted(lf.offset(i) for i in range(hop)) == list(range(hop))
    assert _default_shift(hop) == lf.shift


def test_taper_is_positive_and_symmetric():
    for kind in ("hann", "triangular"):
        w = taper(16, kind)
        assert torch.all(w > 0) and torch.allclose(w, w.flip(0))
        assert w[0] < 0.1 * w.max()


def iid_gaussian_denoiser(x, sigma, mu=None, s=0.5):
    """Exact denoiser of independent frames x_t ~ N(mu_t, s^2) (frame means from a frame-aligned condition)."""
    sig = sigma.reshape(-1, 1, 1, 1, 1).to(x.dtype)
    m = 0.0 if mu is None else mu.to(x.dtype)[:, None, :, :, None]  # mu [B, T, 1] -> [B, 1, T, 1, 1]
    return (s**2 * x + sig**2 * m) / (s**2 + sig**2)


def test_frame_local_denoiser_long_form_equals_full_length_sampler():
    """For a denoiser without temporal coupling every window agrees on every frame, so the blend is exact:
    long-form sampling must reproduce the full-length sampler (this checks slicing of the condition too)."""
    B, T = 3, 37
    mu = torch.linspace(-1, 1, T).repeat(B, 1)[..., None]  # [B, T, 1]
    for churn in (0.0, 20.0):
        sampler = HeunSampler(num_steps=10, S_churn=churn)
        lf = LongFormSampler(sampler, window=9, hop=4)
        a = lf(iid_gaussian_denoiser, (B, 1, T, 2, 2), cond_fn=slice_frames({"mu": mu}),
               generator=torch.Generator().manual_seed(0))
        b = sampler(lambda x, s: iid_gaussian_denoiser(x, s, mu), (B, 1, T, 2, 2), generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_blended_denoiser_uses_each_windows_condition():
    """D returns the condition (frame index) of the frames it was given: the blend must give frame t value t."""
    T = 30
    idx = torch.arange(T, dtype=torch.float64).repeat(2, 1)[..., None]
    lf = LongFormSampler(HeunSampler(num_steps=3), window=8, hop=3)
    x = torch.zeros(2, 1, T, 1, 1, dtype=torch.float64)
    fn = lambda xx, s, idx: idx[:, None, :, :, None].expand_as(xx)  # noqa: E731
    for step in range(3):
        d = lf.blended_denoise(fn, x, torch.ones(2, dtype=torch.float64), slice_frames({"idx": idx}), step)
        torch.testing.assert_close(d[0, 0, :, 0, 0], torch.arange(T, dtype=torch.float64))


def tiny_unet_denoiser(seed=0, cond_dim=6):
    torch.manual_seed(seed)
    net = VideoUNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, resolution=8, attn_resolutions=(4,),
                    cross_attn_resolutions=(4,), cond_dim=cond_dim, noise_emb_dim=16, num_heads=2)
    with torch.no_grad():  # zero-initialised residual outputs would hide temporal and cross-attention paths
        for p in net.parameters():
            if p.abs().max() == 0:
                p.normal_(0, 0.1)
    return EDMPrecond(net.eval(), sigma_data=0.25)


@pytest.mark.parametrize("T", [5, 8])
@pytest.mark.parametrize("churn", [0.0, 30.0])
def test_short_video_equals_plain_sampler_exactly(T, churn):
    D = tiny_unet_denoiser()
    g = torch.Generator().manual_seed(3)
    cond = torch.randn(2, T, 6, generator=g)
    mask = torch.ones(2, T, dtype=torch.bool)
    sampler = HeunSampler(num_steps=4, S_churn=churn, S_min=0.0, S_max=1e9)
    lf = LongFormSampler(sampler, window=8, hop=4)
    a = lf(D, (2, 1, T, 8, 8), cond_fn=slice_frames({"cond": cond, "cond_mask": mask}),
           generator=torch.Generator().manual_seed(1))
    b = sampler(lambda x, s: D(x, s, cond=cond, cond_mask=mask), (2, 1, T, 8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_long_video_with_network_batches_windows():
    D = tiny_unet_denoiser()
    T = 21
    cond = torch.randn(1, T, 6)
    sampler = HeunSampler(num_steps=3)
    lf = LongFormSampler(sampler, window=8, hop=4)
    out = lf(D, (1, 1, T, 8, 8), cond_fn=slice_frames({"cond": cond}), generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, T, 8, 8) and torch.isfinite(out).all()
    # the first window's call measures its memory; with the default budget the other windows of every step
    # then go through the network in one call
    assert lf.window_mb is not None and lf.windows_per_call() >= 5
    assert lf.last_nfe == sampler.nfe + 1
    lf2 = LongFormSampler(sampler, window=8, hop=4, max_windows_per_call=2)
    out2 = lf2(D, (1, 1, T, 8, 8), cond_fn=slice_frames({"cond": cond}), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, out2, rtol=1e-4, atol=1e-4)
    assert lf2.last_nfe > lf.last_nfe
    # a budget smaller than one window: one window per call, the same video
    lf3 = LongFormSampler(sampler, window=8, hop=4, memory_budget_mb=1e-3)
    out3 = lf3(D, (1, 1, T, 8, 8), cond_fn=slice_frames({"cond": cond}), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, out3, rtol=1e-4, atol=1e-4)
    n = sampler.num_steps
    assert lf3.windows_per_call() == 1
    assert lf3.last_nfe == sum((2 if i < n - 1 else 1) * len(lf3.starts(T, i)) for i in range(n))
    with pytest.raises(ValueError, match="memory_budget_mb"):
        LongFormSampler(sampler, window=8, hop=4, memory_budget_mb=0)


class GPDenoiser:
    """Exact denoiser of a temporal Gaussian process (independent pixels): x ~ N(0, K), K_ij = s^2 exp(-(i-j)^2/2l^2).

    D(x; sigma) = K (K + sigma^2 I)^-1 x over the frames of whatever clip it is given, so a window only
    knows its own frames: sampled alone, neighbouring windows are independent at their border.
    """

    def __init__(self, s=0.5, ell=3.0):
        self.s, self.ell = s, ell

    def K(self, T):
        t = torch.arange(T, dtype=torch.float64)
        return self.s**2 * torch.exp(-((t[:, None] - t[None]) ** 2) / (2 * self.ell**2)) + 1e-8 * torch.eye(T, dtype=torch.float64)

    def __call__(self, x, sigma, **kw):
        T = x.shape[2]
        K = self.K(T)
        out = torch.empty_like(x)
        for b in range(x.shape[0]):
            M = torch.linalg.solve(K + float(sigma[b]) ** 2 * torch.eye(T, dtype=torch.float64), K)  # symmetric
            out[b] = torch.einsum("ts,cshw->cthw", M, x[b].double()).to(x.dtype)
        return out


def test_long_form_has_no_seams_where_independent_windows_do():
    W, hop, T = 16, 8, 48
    gp = GPDenoiser()
    shape = (16, 1, T, 4, 4)  # 256 independent pixel sequences
    sampler = HeunSampler(num_steps=12)
    naive = sample_independent_windows(sampler, gp, shape, window=W, generator=torch.Generator().manual_seed(0))
    long = LongFormSampler(sampler, window=W, hop=hop)(gp, shape, generator=torch.Generator().manual_seed(0))
    naive_ratio = seam_score(naive, W, W)
    long_ratio = seam_score(long, W, W)
    long_ratio_fine = seam_score(long, W, hop)
    # independent windows: border change ~ sqrt(2) s vs sqrt(2 (1 - exp(-1/18))) s inside, a ratio of about 4
    print(f"seam ratio: independent windows {naive_ratio:.2f}, long-form {long_ratio:.3f} (hop grid {long_ratio_fine:.3f})")
    assert naive_ratio > 3.0, naive_ratio
    assert 0.85 < long_ratio < 1.15 and 0.85 < long_ratio_fine < 1.15, (long_ratio, long_ratio_fine)
    # and the long-form video has the process's temporal correlation everywhere (also across borders)
    v = long[:, 0].permute(0, 2, 3, 1).reshape(-1, T).double()
    for lag in (1, 4, 10):
        r = float((v[:, lag:] * v[:, :-lag]).mean() / (v * v).mean())
        assert abs(r - math.exp(-(lag**2) / 18)) < 0.08, (lag, r)


def test_seam_score_on_synthetic_videos():
    T = 40
    smooth = 0.1 * torch.arange(T, dtype=torch.float64)[:, None, None] * torch.ones(T, 4, 4)  # constant change
    assert seam_score(smooth, 10, 10) == pytest.approx(1.0)
    jumpy = smooth.clone()
    for b in (10, 20, 30):
        jumpy[b:] += 1.0
    assert seam_score(jumpy, 10, 10) > 5
    assert seam_score(jumpy.numpy()[None, None], 10, 10) == pytest.approx(seam_score(jumpy, 10, 10))
