"""mri2audio networks (F, A, D, Lip2AudSpec) and losses against closed forms and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from articulate.networks.mri2audio.attention import ResidualAttention
from articulate.networks.mri2audio.discriminator import MelDiscriminator
from articulate.networks.mri2audio.frame_translator import FrameTranslator
from articulate.networks.mri2audio.lip2audspec import Lip2AudSpecNet, temporal_features
from articulate.networks.mri2audio.losses import (
    AdversarialLoss,
    Corr2DMSELoss,
    PairwiseKL,
    ReconstructionLoss,
    gaussian_kl,
)
from articulate.networks.mri2audio.translator import HeterogeneousTranslator


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- closed-form parameter counts (weights + biases) ----------------------------------------------
def conv_params(cin: int, cout: int, k: int, dims: int) -> int:
    return cin * cout * k**dims + cout


def translator_params(enc=(16, 32, 64, 128, 128), dec=(128, 64, 32), m=14, s=100) -> int:
    widths = [1, *enc]
    total = sum(conv_params(a, b, 3, 3) for a, b in zip(widths[:-1], widths[1:]))
    widths = [m + s, *dec, 1]
    return total + sum(conv_params(a, b, 4, 2) for a, b in zip(widths[:-1], widths[1:]))


def attention_params(ch=(16, 32, 64, 128)) -> int:
    widths = [1, *ch]
    enc = sum(conv_params(a, b, 4, 2) for a, b in zip(widths[:-1], widths[1:]))
    mirror = [*ch[::-1], ch[0]]
    dec = sum(conv_params(a, b, 4, 2) for a, b in zip(mirror[:-1], mirror[1:]))
    return enc + dec + conv_params(ch[0], 1, 1, 2)


def lip2audspec_params(image=128, ch=(32, 32, 32, 64, 64, 128, 128), hidden=512, dense=2048, out=64 * 64) -> int:
    widths = [3, *ch]
    conv = sum(conv_params(a, b, 3, 3) + 2 * b for a, b in zip(widths[:-1], widths[1:]))  # + BN scale/shift
    feat = ch[-1] * (image // 16) ** 2
    lstm = 4 * hidden * (feat + hidden) + 2 * 4 * hidden  # PyTorch keeps two bias vectors
    head = 2 * hidden + hidden * dense + dense + 2 * dense + dense * out + out
    return conv + lstm + head


def test_parameter_counts_match_closed_form_and_paper_ratio():
    f, a, lip = HeterogeneousTranslator(), ResidualAttention(), Lip2AudSpecNet()
    assert n_params(f) == translator_params() == 1_131_521
    assert n_params(a) == attention_params() == 348_801
    assert n_params(lip) == lip2audspec_params() == 28_167_104
    # The paper: F has about 10x fewer parameters than Lip2AudSpec; ours has fewer still, with A too.
    assert n_params(lip) / (n_params(f) + n_params(a)) > 10


# -- translator F ----------------------------------------------------------------------------------
def test_translator_paper_shapes_and_range():
    torch.manual_seed(0)
    f = HeterogeneousTranslator().eval()
    x = torch.rand(1, 1, 26, 128, 128)
    with torch.no_grad():
        out = f(x)
    assert out.mel.shape == (1, 1, 64, 64)
    assert out.mu.shape == out.logvar.shape == (1, 14, 4, 4)
    assert out.subject.shape == (1, 100, 4, 4)
    assert 0.0 < out.mel.min() and out.mel.max() < 1.0


def test_translator_tensor_slice_is_a_channel_split():
    torch.manual_seed(0)
    f = HeterogeneousTranslator(encoder_channels=(4, 8), decoder_channels=(4,), utterance_channels=2, subject_channels=4,
                                latent_size=2, logvar_limit=1e6)
    x = torch.rand(2, 1, 4, 8, 8)
    captured = {}
    f.encoder[-1].register_forward_hook(lambda m, i, o: captured.update(h=o))
    mu, logvar, subject = f.encode(x)
    h = F.max_pool3d(captured["h"], (2, 2, 2)).mean(2)  # linear latent layer; T: 2 -> 1, 4x4 -> 2x2
    torch.testing.assert_close(mu, h[:, 0:2])
    torch.testing.assert_close(logvar, h[:, 2:4])
    torch.testing.assert_close(subject, h[:, 4:8])
    # The latent is linear (no ReLU): negative log-variances, i.e. sigma < 1, are reachable.
    with torch.no_grad():
        f.encoder[-1].bias.fill_(-5.0)
        _, logvar, _ = f.encode(x)
    assert (logvar < 0).all()


def test_translator_reparameterisation_train_vs_eval():
    torch.manual_seed(0)
    f = HeterogeneousTranslator(encoder_channels=(4, 8), decoder_channels=(4,), utterance_channels=2, subject_channels=4, latent_size=2)
    x = torch.rand(2, 1, 4, 8, 8)
    f.eval()
    a, b = f(x).mel, f(x).mel
    torch.testing.assert_close(a, b)  # eval: u = mu, deterministic
    f.train()
    assert not torch.allclose(f(x).mel, a)  # u = mu + sigma * eps
    f.sample_noise = lambda like: torch.zeros_like(like)
    torch.testing.assert_close(f(x).mel, a)  # eps = 0 gives the eval path


def test_translator_rejects_inconsistent_latent_width():
    with pytest.raises(ValueError, match="2 \\* utterance_channels"):
        HeterogeneousTranslator(encoder_channels=(16, 32, 64, 128, 100))


def test_translator_logvar_is_clamped():
    f = HeterogeneousTranslator(encoder_channels=(4, 8), decoder_channels=(4,), utterance_channels=2, subject_channels=4,
                                latent_size=2, logvar_limit=0.01)
    with torch.no_grad():
        for p in f.parameters():
            p.fill_(1.0)
    _, logvar, _ = f.encode(torch.ones(1, 1, 2, 8, 8))
    assert logvar.max().item() == pytest.approx(0.01)


# -- attention A -----------------------------------------------------------------------------------
def test_attention_masks_multiply_frames_and_first_frame_rule():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 5, 32, 32)
    a = ResidualAttention(channels=(4, 8, 8, 8))
    xa, masks = a(x)
    assert xa.shape == masks.shape == x.shape
    assert (masks > 0).all() and (masks < 1).all()
    torch.testing.assert_close(xa, masks * x)
    # "repeat": frame 1 uses the residual |x_2 - x_1|, the same as frame 2, so the masks are equal.
    torch.testing.assert_close(masks[:, :, 0], masks[:, :, 1])
    # Each mask is A's output for |x_t - x_{t-1}|, computed frame by frame here.
    d = (x[:, :, 3] - x[:, :, 2]).abs()
    torch.testing.assert_close(masks[:, :, 3], a.masks_of(d))

    ones = ResidualAttention(channels=(4, 8, 8, 8), first_frame="ones")
    ones.load_state_dict(a.state_dict())
    xo, mo = ones(x)
    assert torch.equal(mo[:, :, 0], torch.ones_like(mo[:, :, 0]))
    torch.testing.assert_close(mo[:, :, 1:], masks[:, :, 1:])


def test_attention_sees_only_motion():
    """Masks depend on frame differences only: a static offset added to every frame changes nothing."""
    torch.manual_seed(1)
    a = ResidualAttention(channels=(4, 8))
    x = torch.rand(1, 1, 4, 16, 16) * 0.5
    offset = torch.rand(1, 1, 1, 16, 16) * 0.5
    torch.testing.assert_close(a(x)[1], a(x + offset)[1])


def test_attention_rejects_bad_inputs():
    a = ResidualAttention(channels=(4, 8))
    with pytest.raises(ValueError, match="at least 2 frames"):
        a(torch.rand(1, 1, 1, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        a(torch.rand(1, 1, 3, 18, 16))
    with pytest.raises(ValueError, match="first_frame"):
        ResidualAttention(first_frame="zeros")


# -- discriminator D -------------------------------------------------------------------------------
def test_discriminator_returns_logits():
    torch.manual_seed(0)
    d = MelDiscriminator()
    mel = torch.rand(3, 1, 64, 64)
    logits = d(mel)
    assert logits.shape == (3,)
    torch.testing.assert_close(d.probability(mel), torch.sigmoid(logits))
    # 3 conv + 2 fully connected layers.
    assert len(d.convs) == 3 and isinstance(d.fc1, torch.nn.Linear) and isinstance(d.fc2, torch.nn.Linear)


# -- Lip2AudSpec ------------------------------------------------------------------------------------
def test_temporal_features_closed_form():
    x = torch.arange(5, dtype=torch.float32).square().view(1, 1, 5, 1, 1).expand(1, 1, 5, 2, 2)  # t^2
    f = temporal_features(x)
    assert f.shape == (1, 3, 5, 2, 2)
    np.testing.assert_allclose(f[0, 0, :, 0, 0], [0, 1, 4, 9, 16])
    np.testing.assert_allclose(f[0, 1, :, 0, 0], [0, 1, 3, 5, 7])  # backward difference, 0 at t = 1
    np.testing.assert_allclose(f[0, 2, :, 0, 0], [0, 1, 2, 2, 2])


def test_lip2audspec_small_forward_and_slicing():
    torch.manual_seed(0)
    net = Lip2AudSpecNet(image_size=(32, 32), conv_channels=(4, 4, 4, 8, 8, 8, 8), lstm_hidden=16, dense=32).eval()
    x = torch.rand(2, 1, 9, 32, 32)
    assert net.slices(x).shape == (2, 5, 3, 5, 32, 32)  # 9 - 5 + 1 windows of 5 frames
    torch.testing.assert_close(net.slices(x)[:, 2, 0], x[:, 0, 2:7])
    y = net(x)
    assert y.shape == (2, 1, 64, 64) and (y > 0).all() and (y < 1).all()
    assert net.feature_size == 8 * 2 * 2  # 5 frames -> 1 after two unpadded layers, 32 / 16 = 2
    with pytest.raises(ValueError, match="built for"):
        net(torch.rand(1, 1, 9, 16, 16))


# -- losses -----------------------------------------------------------------------------------------
def test_reconstruction_loss_is_eq1():
    torch.manual_seed(0)
    p, t = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    expected = sum(float(((p[i] - t[i]) ** 2).sum()) for i in range(3)) / 3
    assert ReconstructionLoss()(p, t).item() == pytest.approx(expected, rel=1e-6)
    assert ReconstructionLoss("mean")(p, t).item() == pytest.approx(F.mse_loss(p, t).item(), rel=1e-6)
    # the lowest 3 bands (rows of each [n_mels, frames] map) counted 4 times
    low = sum(float(((p[i] - t[i]) ** 2)[:, :3].sum()) for i in range(3)) / 3
    assert ReconstructionLoss(low_bands=3, low_band_weight=4.0)(p, t).item() == pytest.approx(expected + 3 * low, rel=1e-6)
    with pytest.raises(ValueError, match="low_band_weight"):
        ReconstructionLoss(low_bands=3, low_band_weight=0.0)


def test_gaussian_kl_matches_torch_distributions_and_eq2():
    torch.manual_seed(0)
    mu1, mu2 = torch.randn(4, 14, dtype=torch.float64), torch.randn(4, 14, dtype=torch.float64)
    lv1, lv2 = torch.randn(4, 14, dtype=torch.float64), torch.randn(4, 14, dtype=torch.float64)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu1, (0.5 * lv1).exp()), torch.distributions.Normal(mu2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(gaussian_kl(mu1, lv1, mu2, lv2), ref)
    # Eq. 2 written with variances, summed over the M = 14 channels.
    s1, s2 = lv1.exp(), lv2.exp()
    eq2 = -0.5 * (1 + torch.log(s1 / s2) - s1 / s2 - (mu1 - mu2) ** 2 / s2).sum(1)
    torch.testing.assert_close(PairwiseKL()(mu1, lv1, mu2, lv2, weight=torch.ones(4)), eq2.mean())


def test_pairwise_kl_weights_pairs_and_vanishes_for_identical():
    torch.manual_seed(0)
    mu, lv = torch.randn(4, 14, 4, 4), torch.randn(4, 14, 4, 4)
    kl = PairwiseKL()
    assert kl(mu, lv, mu.clone(), lv.clone()).abs().item() < 1e-6
    mu2 = mu + 1.0
    per_pair = gaussian_kl(mu, lv, mu2, lv).flatten(1).sum(1)
    w = torch.tensor([0.5, 0.0, 0.5, 0.0])  # beta on same-utterance pairs, 0 elsewhere
    assert kl(mu, lv, mu2, lv, weight=w).item() == pytest.approx(float((per_pair * w).mean()), rel=1e-5)
    assert kl(mu, lv, mu2, lv, weight=torch.zeros(4)).item() == 0.0
    assert (per_pair > 0).all()


@pytest.mark.parametrize("form", ["non_saturating", "saturating"])
def test_adversarial_losses_closed_forms(form):
    logits = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.5], dtype=torch.float64, requires_grad=True)
    real = torch.tensor([1.5, -0.2, 0.3, 2.0, -1.0], dtype=torch.float64)
    adv = AdversarialLoss(form)
    sig = torch.sigmoid(logits.detach())
    # D: -log D(real) - log(1 - D(fake)), as plain log-probabilities.
    d_expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - sig).mean()
    torch.testing.assert_close(adv.discriminator_loss(real, logits.detach()), d_expected)
    g = adv.generator_loss(logits)
    g.backward()
    if form == "non_saturating":
        torch.testing.assert_close(g, -torch.log(sig).mean())
        torch.testing.assert_close(logits.grad, (sig - 1) / 5)
    else:
        torch.testing.assert_close(g, torch.log(1 - sig).mean())
        torch.testing.assert_close(logits.grad, -sig / 5)
    # Both forms push the generator towards fooling D: the gradient raises the fake logits.
    assert (logits.grad < 0).all()


def test_adversarial_losses_stable_and_saturation():
    adv_ns, adv_s = AdversarialLoss("non_saturating"), AdversarialLoss("saturating")
    extreme = torch.tensor([-200.0, 200.0], requires_grad=True)
    for loss in (adv_ns.generator_loss(extreme), adv_s.generator_loss(extreme), adv_ns.discriminator_loss(extreme, -extreme)):
        assert torch.isfinite(loss)
    # A confidently rejected fake (logit -20): the minimax gradient vanishes, the non-saturating does not.
    logit = torch.tensor([-20.0], requires_grad=True)
    (g_s,) = torch.autograd.grad(adv_s.generator_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(adv_ns.generator_loss(logit), logit)
    assert abs(g_s.item()) < 1e-8 and g_ns.item() == pytest.approx(-1.0, abs=1e-6)
    with pytest.raises(ValueError):
        AdversarialLoss("wasserstein")


def test_corr2d_mse_loss_matches_numpy():
    rng = np.random.default_rng(0)
    p, t = rng.random((2, 1, 16, 16)), rng.random((2, 1, 16, 16))
    r = np.mean([np.corrcoef(p[i].ravel(), t[i].ravel())[0, 1] for i in range(2)])
    expected = np.mean((p - t) ** 2) - r
    got = Corr2DMSELoss()(torch.from_numpy(p), torch.from_numpy(t)).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert math.isfinite(Corr2DMSELoss()(torch.zeros(1, 1, 4, 4), torch.rand(1, 1, 4, 4)).item())


def test_translator_mean_frame_subtraction_ignores_static_content():
    """With subtract_mean_frame F sees only what changes over time: adding any static image (tag
    grid, anatomy) to every frame leaves its output unchanged; without it the output moves."""
    torch.manual_seed(0)
    kw = dict(encoder_channels=(4, 8), decoder_channels=(4,), utterance_channels=2, subject_channels=4, latent_size=2)
    x, static = torch.rand(2, 1, 4, 8, 8), torch.rand(2, 1, 1, 8, 8)
    f = HeterogeneousTranslator(subtract_mean_frame=True, **kw).eval()
    torch.testing.assert_close(f(x + static).mel, f(x).mel)
    g = HeterogeneousTranslator(**kw).eval()
    g.load_state_dict(f.state_dict())
    assert not torch.allclose(g(x + static).mel, g(x).mel)


def test_frame_translator_shapes_codes_and_start():
    torch.manual_seed(0)
    f = FrameTranslator(frame_channels=(4, 8, 8, 8), temporal_channels=16, utterance_channels=3, subject_channels=5)
    for size in (64, 128):
        out = f.eval()(torch.rand(2, 1, 26, size, size))
        assert out.mel.shape == (2, 1, 64, 64) and out.mu.shape == out.logvar.shape == (2, 3, 1, 1)
        assert out.subject.shape == (2, 5, 1, 1) and 0 <= float(out.mel.detach().min()) and float(out.mel.detach().max()) <= 1
    torch.testing.assert_close(out.logvar, torch.full_like(out.logvar, -6.0))  # init_logvar
    mean = torch.rand(1, 64, 64) * 0.8 + 0.1
    f.init_output_bias(mean)
    start = f(torch.rand(2, 1, 26, 64, 64)).mel
    torch.testing.assert_close(start, mean.mean(dim=2, keepdim=True).expand(1, 64, 64).expand_as(start))
    with pytest.raises(ValueError, match="temporal_kernel"):
        FrameTranslator(temporal_kernel=4)
    h = FrameTranslator(frame_channels=(8, 8, 8, 8), temporal_channels=16, norm="group")
    assert h(torch.rand(1, 1, 26, 64, 64)).mel.shape == (1, 1, 64, 64)
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in h.modules()) == 4 + 2 + 2  # frame convs, time, mel layers
    with pytest.raises(ValueError, match="norm"):
        FrameTranslator(norm="batch")


def test_frame_translator_motion_input_is_the_standardised_change_beside_the_frames():
    """With motion_input the encoder's first layer reads two channels. Through the second alone (the first's weights
    zeroed) F is blind to static content and to the motion's amplitude: the sequence's mean frame plus any static
    image, or its change about that mean doubled, give the same output; through the first it still sees anatomy."""
    torch.manual_seed(0)
    kw = dict(frame_channels=(4, 8), frame_grid=2, temporal_channels=16, utterance_channels=2, subject_channels=3)
    f = FrameTranslator(motion_input=True, **kw).eval()
    assert f.frame_encoder[0].in_channels == 2 and FrameTranslator(**kw).frame_encoder[0].in_channels == 1
    x = torch.rand(2, 1, 6, 16, 16)
    mean = x.mean(dim=2, keepdim=True)
    static = torch.rand(2, 1, 1, 16, 16)
    out = f(x).mel
    assert not torch.allclose(f(x + static).mel, out)  # the raw frames: the anatomy is seen
    with torch.no_grad():
        f.frame_encoder[0].weight[:, 0].zero_()
    out = f(x).mel
    torch.testing.assert_close(f(x + static).mel, out)
    torch.testing.assert_close(f(mean + 2.0 * (x - mean)).mel, out)
    assert not torch.allclose(f(torch.rand_like(x)).mel, out)


def test_frame_translator_reads_each_mel_frame_from_the_mri_frames_around_its_moment():
    """With the time-pooled codes held constant, changing the second half of the sequence leaves the first mel
    frames as they were (two 3-tap layers over MRI frames, linear reading, two over mel frames) and moves the last."""
    torch.manual_seed(0)
    f = FrameTranslator(frame_channels=(4, 8), frame_grid=2, temporal_channels=16, utterance_channels=2,
                        subject_channels=3).eval()
    with torch.no_grad():
        f.codes.weight.zero_()
    x = torch.rand(1, 1, 26, 16, 16)
    y = x.clone()
    y[:, :, 13:] = torch.rand(1, 1, 13, 16, 16)
    a, b = f(x).mel[0, 0], f(y).mel[0, 0]
    # MRI frames <= 10 keep their features; mel frame j reads position (j + 0.5) * 26 / 64 - 0.5 (<= 10 for j <= 25),
    # then two more 3-tap layers: mel frames 0..23 cannot change
    torch.testing.assert_close(a[:, :24], b[:, :24])
    assert (a[:, 40:] - b[:, 40:]).abs().max() > 1e-4


def test_frame_translator_trains_with_the_paper_losses():
    import lightning as L
    from helpers import config_callable, config_value
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_modules.mri2audio_translator import MRI2AudioTranslator

    torch.manual_seed(0)
    f = FrameTranslator(frame_channels=(4, 8), frame_grid=2, temporal_channels=8, utterance_channels=2,
                        subject_channels=3, n_mels=16, n_frames=16)
    a = ResidualAttention(channels=(4, 8))
    d = MelDiscriminator(channels=(4, 8), hidden=8, pool_size=4)
    before = [p.detach().clone() for p in f.parameters()]
    spec = config_value("configs/mri2audio.yaml", "model", "init_args")
    model = MRI2AudioTranslator(f, a, d, pairwise_loss=PairwiseKL(), lambdas=spec["lambdas"],
                                optimizers={k: config_callable(v) for k, v in spec["optimizers"].items()})
    n = 4
    data = TensorDataset(torch.rand(n, 1, 4, 16, 16), torch.rand(n, 1, 16, 16), torch.rand(n, 1, 4, 16, 16),
                         torch.rand(n, 1, 16, 16), torch.tensor([True, False] * 2), torch.arange(n) % 2)
    keys = ("mri", "mel", "mri_pair", "mel_pair", "same_utterance", "utterance")
    loader = DataLoader(data, batch_size=2, collate_fn=lambda items: dict(zip(keys, map(torch.stack, zip(*items)))))
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0).fit(model, loader)
    assert all(not torch.equal(b, p) for b, p in zip(before, f.parameters()) if p.requires_grad and b.abs().sum() > 0)


def test_translator_kaiming_init_keeps_the_encoder_signal():
    """He init: each conv's weight std is sqrt(2 / fan_in) and biases are 0, so a unit-variance
    input reaches the latent at about its own scale (PyTorch's default loses ~2x per layer)."""
    torch.manual_seed(0)
    f = HeterogeneousTranslator()
    for conv in f.encoder:
        fan_in = conv.weight[0].numel()
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
        assert torch.count_nonzero(conv.bias) == 0
    x = torch.randn(2, 1, 26, 64, 64)
    he_latent = torch.cat(f.encode(x), 1).std().item()
    torch.manual_seed(0)
    default_latent = torch.cat(HeterogeneousTranslator(kaiming_init=False).encode(x), 1).std().item()
    assert he_latent > 0.3 and he_latent > 5 * default_latent
