"""EDM core against closed forms: schedule, preconditioning, loss, Heun sampler, guidance.

For Gaussian data x ~ N(mu, s^2 I) the exact denoiser is D(x; sigma) = (s^2 x + sigma^2 mu)/(s^2 + sigma^2),
so every quantity of the sampler is an affine map of the noise that can be written down by hand:
with y = x - mu, the ODE slope is d = a(sigma) y with a(sigma) = sigma/(s^2 + sigma^2), one Heun step
from t to t' (h = t' - t) multiplies y by g = 1 + h/2 (a(t) + a(t') (1 + h a(t))), the final Euler
step by 1 + h a(t), and churn adds independent noise of variance (t_hat^2 - t^2) S_noise^2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from articulate.diffusion import (
    CFGDenoiser,
    EDMLoss,
    EDMPrecond,
    HeunSampler,
    edm_coefficients,
    guided,
    karras_sigmas,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)


MU, S = 0.3, 0.5
SMAX, SMIN = 160.0, 0.002


def gaussian_denoiser(mu=MU, s=S):
    def D(x, sigma):
        sig = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return (s**2 * x + sig**2 * mu) / (s**2 + sig**2)

    return D


def schedule_np(N, smin=SMIN, smax=SMAX, rho=7.0):
    """Karras et al. eq. 5 written independently of the library."""
    if N == 1:
        return np.array([smax, 0.0])
    i = np.arange(N)
    t = (smax ** (1 / rho) + i / (N - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return np.append(t, 0.0)


def gamma_np(t, N, churn, smin_churn=0.05, smax_churn=50.0):
    return min(churn / N, math.sqrt(2) - 1) if (churn > 0 and smin_churn <= t <= smax_churn) else 0.0


def predicted_moments(N, churn=0.0, s_noise=1.003, mu=MU, s=S, smax=SMAX):
    """Mean and variance of the sampler's output (per element) by the affine recurrence above."""
    a = lambda t: t / (s**2 + t**2)  # noqa: E731
    t = schedule_np(N, smax=smax)
    m, v = -mu, smax**2  # y_0 = sigma_max z - mu
    for i in range(N):
        g_i = gamma_np(t[i], N, churn)
        th = t[i] * (1 + g_i)
        v = v + (th**2 - t[i] ** 2) * s_noise**2
        h = t[i + 1] - th
        g = 1 + h * a(th) if i == N - 1 else 1 + h / 2 * (a(th) + a(t[i + 1]) * (1 + h * a(th)))
        m, v = g * m, g * g * v
    return mu + m, v


# ---------------------------------------------------------------- schedule and NFE


@pytest.mark.parametrize("N", [1, 2, 7, 32])
def test_karras_schedule_matches_formula(N):
    t = karras_sigmas(N, SMIN, SMAX, 7.0)
    assert t.dtype == torch.float64 and t.shape == (N + 1,)
    np.testing.assert_allclose(t.numpy(), schedule_np(N), rtol=1e-12)
    assert t[0] == SMAX and t[-1] == 0.0
    if N > 1:
        assert math.isclose(float(t[-2]), SMIN, rel_tol=1e-12)
    assert torch.all(t[1:] < t[:-1])


@pytest.mark.parametrize("N", [1, 2, 5, 18])
def test_nfe_is_two_n_minus_one(N):
    calls = []

    def D(x, sigma):
        calls.append(float(sigma[0]))
        return gaussian_denoiser()(x, sigma)

    sampler = HeunSampler(num_steps=N)
    sampler(D, (3, 2), generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2 * N - 1 == sampler.nfe == sampler.last_nfe
    assert 0.0 not in calls  # the last step is Euler: D is never evaluated at sigma = 0


# ---------------------------------------------------------------- preconditioning


def test_edm_coefficients_formulas():
    sd = 0.25
    sig = torch.tensor([0.002, 0.1, 0.25, 1.0, 160.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_coefficients(sig, sd)
    for k, s in enumerate(sig.tolist()):
        assert math.isclose(c_skip[k], sd**2 / (s**2 + sd**2), rel_tol=1e-12)
        assert math.isclose(c_out[k], s * sd / math.sqrt(s**2 + sd**2), rel_tol=1e-12)
        assert math.isclose(c_in[k], 1 / math.sqrt(s**2 + sd**2), rel_tol=1e-12)
        assert math.isclose(c_noise[k], math.log(s) / 4, rel_tol=1e-12)
    # EDM's design constraint: the effective training target of F has unit variance for data of std sd
    assert torch.allclose(c_out**2, 1 / EDMLoss(sigma_data=sd).weight(sig), rtol=1e-12)


class RecordingNet(torch.nn.Module):
    """F(x_in, c_noise) = 2 x_in + c_noise; keeps what it received."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

    def forward(self, x_in, c_noise, **kw):
        self.seen = (x_in, c_noise, kw)
        return self.w * x_in + c_noise.reshape(-1, *([1] * (x_in.ndim - 1)))


def test_precond_applies_coefficients_per_sample():
    net = RecordingNet()
    P = EDMPrecond(net, sigma_data=0.25)
    x = torch.randn(3, 1, 2, 4, 4, dtype=torch.float64)
    sigma = torch.tensor([0.01, 1.0, 80.0], dtype=torch.float64)
    out = P(x, sigma, cond=torch.ones(3, 5, 2), extra=7)
    x_in, c_noise, kw = net.seen
    for b, s in enumerate(sigma.tolist()):
        c_in = 1 / math.sqrt(s**2 + 0.0625)
        torch.testing.assert_close(x_in[b], x[b] * c_in)
        assert math.isclose(float(c_noise[b]), math.log(s) / 4, rel_tol=1e-12)
        F = 2 * x[b] * c_in + math.log(s) / 4
        expect = 0.0625 / (s**2 + 0.0625) * x[b] + s * 0.25 / math.sqrt(s**2 + 0.0625) * F
        torch.testing.assert_close(out[b], expect)
    assert set(kw) == {"cond", "extra"}  # cond_mask was not given, so it is not passed
    scalar = P(x, 1.0)  # a scalar sigma broadcasts
    torch.testing.assert_close(scalar[1], out[1])


class IdealGaussianNet(torch.nn.Module):
    """The F for which EDMPrecond(F) is the exact denoiser of N(mu, s^2): F = (D* - c_skip x) / c_out."""

    def __init__(self, mu, s, sigma_data):
        super().__init__()
        self.mu, self.s, self.sd = mu, s, sigma_data
        self.register_buffer("dummy", torch.zeros((), dtype=torch.float64))

    def forward(self, x_in, c_noise, **kw):
        sig = torch.exp(4 * c_noise).reshape(-1, *([1] * (x_in.ndim - 1)))
        x = x_in * torch.sqrt(sig**2 + self.sd**2)
        D = (self.s**2 * x + sig**2 * self.mu) / (self.s**2 + sig**2)
        c_skip = self.sd**2 / (sig**2 + self.sd**2)
        c_out = sig * self.sd / torch.sqrt(sig**2 + self.sd**2)
        return (D - c_skip * x) / c_out


def test_precond_of_ideal_net_is_exact_denoiser():
    P = EDMPrecond(IdealGaussianNet(MU, S, 0.25).double(), sigma_data=0.25)
    x = torch.randn(4, 10, dtype=torch.float64) * 3
    sigma = torch.tensor([0.002, 0.3, 5.0, 160.0], dtype=torch.float64)
    torch.testing.assert_close(P(x, sigma), gaussian_denoiser()(x, sigma), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- loss


def test_loss_weighting_formula():
    loss = EDMLoss(sigma_data=0.25)
    x0 = torch.randn(3, 4, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.5, 20.0], dtype=torch.float64)
    delta = torch.full_like(x0, 0.1)
    out = loss(lambda x, s: x0 + delta, x0, sigma=sigma)  # a denoiser off by exactly delta
    w = (sigma**2 + 0.0625) / (sigma * 0.25) ** 2
    torch.testing.assert_close(out, w[:, None] * 0.01 * torch.ones_like(x0))


@pytest.mark.parametrize("s", [0.25, 0.6])
def test_loss_of_exact_denoiser_is_analytic_minimum(s):
    """E[lambda (D* - x0)^2] = lambda(sigma) s^2 sigma^2/(s^2 + sigma^2): the posterior variance, weighted
    (exactly 1 when s = sigma_data); and over ln sigma ~ N(-1.2, 1.2^2) the Gauss-Hermite expectation."""
    sd = 0.25
    g = torch.Generator().manual_seed(1)
    P = EDMPrecond(IdealGaussianNet(MU, s, sd).double(), sigma_data=sd)
    loss = EDMLoss(-1.2, 1.2, sd)
    sig = torch.tensor([0.01, 0.1, 0.5, 3.0, 100.0], dtype=torch.float64)
    n = 40000
    x0 = MU + s * torch.randn(len(sig), n, generator=g, dtype=torch.float64)
    per = loss(P, x0, sigma=sig, generator=g)
    analytic = (sig**2 + sd**2) / (sig * sd) ** 2 * s**2 * sig**2 / (s**2 + sig**2)
    se = per.std(dim=1) / math.sqrt(n)
    assert torch.all((per.mean(dim=1) - analytic).abs() < 5 * se), (per.mean(dim=1), analytic)
    if s == sd:
        torch.testing.assert_close(analytic, torch.ones_like(analytic))
    # averaged over the training sigma distribution
    x0 = MU + s * torch.randn(200000, 1, generator=g, dtype=torch.float64)
    mc = loss(P, x0, generator=g)
    z, w = np.polynomial.hermite_e.hermegauss(80)
    sg = np.exp(-1.2 + 1.2 * z)
    expect = float(np.sum(w * (sg**2 + sd**2) / (sg * sd) ** 2 * s**2 * sg**2 / (s**2 + sg**2)) / np.sqrt(2 * np.pi))
    assert abs(float(mc.mean()) - expect) < 5 * float(mc.std()) / math.sqrt(mc.numel())


def test_training_sigma_is_lognormal():
    loss = EDMLoss(P_mean=-1.2, P_std=1.2)
    ls = loss.sample_sigma(50000, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).log().numpy()
    assert abs(ls.mean() + 1.2) < 5 * 1.2 / math.sqrt(ls.size)
    assert abs(ls.std() - 1.2) < 5 * 1.2 / math.sqrt(2 * ls.size)
    assert stats.kstest(ls, stats.norm(-1.2, 1.2).cdf).pvalue > 1e-3
    # and the loss draws from it: the sigmas a denoiser receives have the same law
    seen = []
    loss(lambda x, s: seen.append(s) or x, torch.zeros(20000, 1, dtype=torch.float64),
         generator=torch.Generator().manual_seed(4))
    assert stats.kstest(seen[0].log().numpy(), stats.norm(-1.2, 1.2).cdf).pvalue > 1e-3


# ---------------------------------------------------------------- Heun sampler


def test_first_heun_step_equals_hand_computation():
    N = 8
    t = schedule_np(N)
    sampler = HeunSampler(num_steps=N)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    steps = []
    sampler(gaussian_denoiser(), z, callback=lambda i, x: steps.append(x.clone()))
    a = lambda u: u / (S**2 + u**2)  # noqa: E731
    h = t[1] - t[0]
    g0 = 1 + h / 2 * (a(t[0]) + a(t[1]) * (1 + h * a(t[0])))
    x0 = z.double() * SMAX
    torch.testing.assert_close(steps[0], MU + g0 * (x0 - MU), rtol=1e-12, atol=1e-12)


def test_first_churned_step_equals_hand_computation():
    N, churn = 4, 30.0  # sigma_1 (about 8.3) lies inside [S_min, S_max]; sigma_0 = 160 does not
    t = schedule_np(N)
    sampler = HeunSampler(num_steps=N, S_churn=churn, S_noise=1.003)
    steps = []
    sampler(gaussian_denoiser(), (5, 2), generator=torch.Generator().manual_seed(7),
            callback=lambda i, x: steps.append(x.clone()))
    g = torch.Generator().manual_seed(7)  # replay the sampler's draws: latents (float32), then churn noise
    z = torch.randn(5, 2, generator=g).double()
    a = lambda u: u / (S**2 + u**2)  # noqa: E731

    def heun(y, th, tn):
        h = tn - th
        return (1 + h / 2 * (a(th) + a(tn) * (1 + h * a(th)))) * y

    y1 = heun(z * SMAX - MU, t[0], t[1])  # no churn at sigma_max > S_max
    torch.testing.assert_close(steps[0], MU + y1, rtol=1e-12, atol=1e-12)
    gam = min(churn / N, math.sqrt(2) - 1)
    th = t[1] * (1 + gam)
    eps = torch.randn(5, 2, generator=g, dtype=torch.float64)
    y_hat = y1 + math.sqrt(th**2 - t[1] ** 2) * 1.003 * eps
    torch.testing.assert_close(steps[1], MU + heun(y_hat, th, t[2]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("N", [8, 32])
def test_deterministic_heun_is_the_exact_affine_map(N):
    """Every output equals mu + G_N (sigma_max z - mu) with G_N the product of per-step factors."""
    z = torch.randn(4000, generator=torch.Generator().manual_seed(2))
    out = HeunSampler(num_steps=N)(gaussian_denoiser(), z.double())
    m, v = predicted_moments(N)
    G = math.sqrt(v) / SMAX
    torch.testing.assert_close(out, MU + G * (SMAX * z.double() - MU), rtol=1e-10, atol=1e-12)


def test_deterministic_heun_converges_to_data_distribution():
    """The N-step map tends to the exact ODE solution G = s / sqrt(s^2 + sigma_max^2); with many steps the
    samples have mean mu and std s (up to the O(s/sigma_max) start bias and sampling error)."""
    G_exact = S / math.sqrt(S**2 + SMAX**2)
    errs = [abs(math.sqrt(predicted_moments(N)[1]) / SMAX - G_exact) / G_exact for N in (8, 16, 32, 64, 256)]
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:]))
    assert errs[-1] < 2e-3 and errs[2] < 0.05
    n = 40000
    out = HeunSampler(num_steps=256)(gaussian_denoiser(), (n,), generator=torch.Generator().manual_seed(5))
    assert abs(float(out.mean()) - MU) < 5 * S / math.sqrt(n) + MU * S / SMAX
    assert abs(float(out.std()) - S) < 5 * S / math.sqrt(2 * n) + errs[-1] * S


@pytest.mark.parametrize("start", [1.0, 0.3])
def test_truncated_start_is_the_affine_map_from_the_origin(start):
    """With ``sigma_start`` the chain starts at ``start * z`` (the origin plus noise of that level) and runs the
    Karras schedule from there: the output is mu + G (start z - mu), G the per-step product on the truncated
    schedule, tending to the exact ODE's s / sqrt(s^2 + start^2). So the samples keep a share of the origin:
    their mean is mu (1 - G), their spread G start."""
    z = torch.randn(4000, generator=torch.Generator().manual_seed(3)).double()
    for N in (8, 32):
        out = HeunSampler(num_steps=N, sigma_start=start)(gaussian_denoiser(), z)
        G = math.sqrt(predicted_moments(N, smax=start)[1]) / start
        torch.testing.assert_close(out, MU + G * (start * z - MU), rtol=1e-10, atol=1e-12)
    G_exact = S / math.sqrt(S**2 + start**2)
    assert abs(math.sqrt(predicted_moments(256, smax=start)[1]) / start - G_exact) < 1e-4
    # at or above sigma_max it is EDM's own schedule; below sigma_min it is refused
    full = HeunSampler(num_steps=8)(gaussian_denoiser(), z)
    torch.testing.assert_close(HeunSampler(num_steps=8, sigma_start=SMAX * 2)(gaussian_denoiser(), z), full)
    with pytest.raises(ValueError, match="sigma_start"):
        HeunSampler(sigma_start=SMIN / 2)


def test_sampler_replace_keeps_every_other_setting():
    s = HeunSampler(num_steps=8, S_churn=3.0, sigma_start=0.5, dtype="float32")
    r = s.replace(num_steps=4)
    assert (r.num_steps, r.S_churn, r.sigma_start, r.dtype, r.sigma_max) == (4, 3.0, 0.5, torch.float32, s.sigma_max)
    assert s.replace(sigma_start=None).sigma_top == s.sigma_max
    with pytest.raises(TypeError, match="unknown"):
        s.replace(steps=3)


@pytest.mark.parametrize("churn", [10.0, 40.0])
def test_stochastic_heun_moments(churn):
    N, n = 32, 40000
    out = HeunSampler(num_steps=N, S_churn=churn)(gaussian_denoiser(), (n,), generator=torch.Generator().manual_seed(11))
    m, v = predicted_moments(N, churn=churn)
    assert abs(float(out.mean()) - m) < 5 * math.sqrt(v / n)
    assert abs(float(out.var()) - v) < 5 * v * math.sqrt(2 / n)
    # the churned chain's law tends to the data law as steps grow (error ~ 1/N; 6% in std at 32 steps)
    errs = [abs(math.sqrt(predicted_moments(k, churn=churn, s_noise=1.0)[1]) - S) / S for k in (32, 64, 128, 512)]
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:])) and errs[0] < 0.07 and errs[-1] < 2e-3
    assert abs(m - MU) < 1e-3


def test_sampler_determinism_and_dtype():
    D = gaussian_denoiser()
    det = HeunSampler(num_steps=6)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(det(D, z), det(D, z))
    a = det(D, (3, 4), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, det(D, z))  # a generator with the same seed draws the same latents
    sto = HeunSampler(num_steps=6, S_churn=40)
    r1 = sto(D, z, generator=torch.Generator().manual_seed(1))
    assert torch.equal(r1, sto(D, z, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(r1, sto(D, z, generator=torch.Generator().manual_seed(2)))
    f32 = HeunSampler(num_steps=6, dtype="float32")(D, z)
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32, a, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- classifier-free guidance


def test_guidance_scales():
    x = torch.randn(2, 3)
    sig = torch.ones(2)
    dc = lambda x, s: x + 1.0  # noqa: E731
    du = lambda x, s: x * 0.5  # noqa: E731
    torch.testing.assert_close(guided(dc, du, 1.0)(x, sig), dc(x, sig))
    torch.testing.assert_close(guided(dc, du, 0.0)(x, sig), du(x, sig))
    torch.testing.assert_close(guided(dc, du, 3.0)(x, sig), du(x, sig) + 3.0 * (dc(x, sig) - du(x, sig)))


class CondToy(torch.nn.Module):
    """D = x * sigma-dependent factor + masked mean of the condition (0 when fully masked)."""

    def forward(self, x, sigma, cond=None, cond_mask=None, low_res=None):
        self.batches = getattr(self, "batches", []) + [x.shape[0]]
        m = cond_mask.float()
        pooled = (cond * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        out = x / (1 + sigma.reshape(-1, 1)) + pooled.sum(1, keepdim=True)
        return out + (0 if low_res is None else low_res)


def test_cfg_denoiser_batched_matches_separate_calls():
    g = torch.Generator().manual_seed(0)
    x, sig = torch.randn(3, 4, generator=g), torch.rand(3, generator=g) + 0.1
    cond = torch.randn(3, 5, 2, generator=g)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 3:] = False
    lr = torch.randn(3, 4, generator=g)
    net = CondToy()
    d_c = net(x, sig, cond, mask, low_res=lr)
    d_u = net(x, sig, cond, torch.zeros_like(mask), low_res=lr)
    for scale in (0.0, 1.0, 2.5):
        net.batches = []
        out = CFGDenoiser(net, scale)(x, sig, cond=cond, cond_mask=mask, low_res=lr)
        torch.testing.assert_close(out, d_u + scale * (d_c - d_u))
        assert net.batches == ([6] if scale not in (0.0, 1.0) else [3])  # one batched forward when guiding
    unb = CFGDenoiser(net, 2.5, batched=False)(x, sig, cond=cond, cond_mask=mask, low_res=lr)
    torch.testing.assert_close(unb, d_u + 2.5 * (d_c - d_u))


def test_frame_standardizer_centres_each_pixel_and_scales_to_sigma_data():
    from articulate.diffusion import FrameStandardizer

    g = torch.Generator().manual_seed(0)
    frames = torch.rand(200, 6, 6, generator=g) * torch.linspace(0.1, 1.0, 36).reshape(6, 6) - 0.7
    st = FrameStandardizer(resolution=6, sigma_data=0.25)
    assert not bool(st.fitted)
    st.fit(frames)
    z = st(frames[:, None, None])  # [N, 1, 1, H, W], any leading shape
    torch.testing.assert_close(z.mean(0).squeeze(), torch.zeros(6, 6), atol=1e-6, rtol=0)
    assert float(z.pow(2).mean().sqrt()) == pytest.approx(0.25, rel=1e-5)
    torch.testing.assert_close(st.inverse(z), frames[:, None, None], atol=1e-6, rtol=0)
    torch.testing.assert_close(st.mean_frame, frames.double().mean(0).float())
    with pytest.raises(ValueError, match="6-px"):
        st.fit(torch.zeros(3, 4, 4))


def test_speech_prior_standardizer_is_ridge_on_feature_windows_and_round_trips():
    """The prior equals an independent ridge fit (numpy least squares on the same windows, tiny penalty); the
    residual is scaled to sigma_data; inverse undoes forward; the fitted buffers load into a fresh instance."""
    import numpy as np

    from articulate.diffusion import SpeechPriorStandardizer

    g = torch.Generator().manual_seed(0)
    B, T, D, R, m = 6, 10, 3, 4, 2
    feats = torch.randn(B, T + 2 * m, D, generator=g)
    st = SpeechPriorStandardizer(resolution=R, sigma_data=0.25, context=1, alpha=1e-9)
    win = st.windows(feats, m)  # [B, T, 3 D]: frame t reads feature frames t+m-1 .. t+m+1
    torch.testing.assert_close(win[:, :, D:2 * D], feats[:, m:m + T])
    torch.testing.assert_close(win[:, :, :D], feats[:, m - 1:m - 1 + T])
    true_w = torch.randn(3 * D, R * R, generator=g) * 0.1
    video = (win.reshape(-1, 3 * D) @ true_w - 0.5 + 0.05 * torch.randn(B * T, R * R, generator=g))
    video = video.reshape(B, T, R, R)[:, None]
    st.fit([(feats[:3], video[:3]), (feats[3:], video[3:])], m)  # streamed in two batches
    x = np.c_[win.reshape(-1, 3 * D).double().numpy(), np.ones(B * T)]
    coef = np.linalg.lstsq(x, video[:, 0].reshape(B * T, -1).double().numpy(), rcond=None)[0]
    ref = torch.from_numpy(x @ coef).float().reshape(B, T, R, R)[:, None]
    torch.testing.assert_close(st.prior(feats, m), ref, atol=1e-4, rtol=0)
    z = st(video, feats, m)
    assert float(z.pow(2).mean().sqrt()) == pytest.approx(0.25, rel=1e-3)
    torch.testing.assert_close(st.inverse(z, feats, m), video, atol=1e-5, rtol=0)
    fresh = SpeechPriorStandardizer(resolution=R, sigma_data=0.25, context=1)
    fresh.load_state_dict(st.state_dict())
    torch.testing.assert_close(fresh.prior(feats, m), st.prior(feats, m))
    with pytest.raises(ValueError, match="speech features"):
        st(video)
