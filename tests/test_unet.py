"""VideoUNet: shapes for the paper's sizes, gradient flow, identity-initialised temporal layers, condition
masking, cross-attention locality, the super-resolution input, checkpointing."""

from __future__ import annotations

import pytest
import torch

from articulate.diffusion import EDMLoss, EDMPrecond
from articulate.networks.wav2uti.unet import VideoUNet
from articulate.networks.wav2uti.unet_blocks import (
    Context,
    CrossAttention,
    SpatialAttention,
    TemporalAttention,
    TemporalConv,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (tests/conftest.py)



def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, resolution=16, attn_resolutions=(8,),
                cross_attn_resolutions=(8,), cond_dim=6, noise_emb_dim=16, num_heads=2)
    args.update(kw)
    return VideoUNet(**args)


def randomize_zero_init(net, std=0.2, seed=0):
    """Fill the zero-initialised output layers so every path contributes (a trained network's state)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().max() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return net


@pytest.mark.parametrize("size", [64, 96, 112])
def test_four_level_shapes_for_paper_resolutions(size):
    net = VideoUNet(base_channels=4, channel_mults=(1, 2, 3, 4), num_res_blocks=1, resolution=size, cond_dim=4,
                    noise_emb_dim=8, num_heads=2, temporal="conv")
    names = {type(b).__name__ for s in net.down for b in s.blocks}
    assert {"SpatialAttention", "CrossAttention"} <= names  # 16 -> the 16/14/12 px level at 64/112/96
    x = torch.randn(1, 1, 3, size, size)
    with torch.no_grad():
        y = net(x, torch.zeros(1), cond=torch.randn(1, 5, 4))
    assert y.shape == x.shape


@pytest.mark.parametrize("T", [1, 2, 7])
def test_any_clip_length_and_bad_sizes(T):
    net = tiny().eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, T, 16, 24), torch.zeros(2)).shape == (2, 1, T, 16, 24)
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 1, T, 15, 16), torch.zeros(1))
    with pytest.raises(ValueError, match="cond must be"):
        net(torch.randn(1, 1, T, 16, 16), torch.zeros(1), cond=torch.randn(1, 4, 5))


def test_gradients_reach_every_parameter():
    net = randomize_zero_init(tiny(temporal="both", global_cond_dim=3, low_res_channels=1))
    B, T = 2, 4
    cond = torch.randn(B, 6, 6)
    mask = torch.ones(B, 6, dtype=torch.bool)
    mask[1, 4:] = False
    y = net(torch.randn(B, 1, T, 16, 16), torch.randn(B), cond=cond, cond_mask=mask,
            low_res=torch.randn(B, 1, T, 16, 16), aug_noise=torch.randn(B), global_cond=torch.randn(B, 3))
    y.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_fresh_network_is_framewise_and_temporal_layers_start_as_identity():
    """At initialisation every temporal and attention branch outputs zero, so frame t of a clip is
    denoised exactly as if it were alone; after training (randomised here) frames interact."""
    torch.manual_seed(0)
    net = tiny(temporal="both", cond_dim=0).eval()
    for m in net.modules():
        if isinstance(m, (TemporalConv, TemporalAttention)):
            x = torch.randn(6, m.norm.num_channels, 4, 4)
            assert torch.equal(m(x, Context(B=2, T=3, emb=torch.zeros(6, 16))), x)
    x = torch.randn(1, 1, 5, 16, 16)
    c = torch.full((1,), 0.3)
    with torch.no_grad():
        whole = net(x, c)
        alone = torch.cat([net(x[:, :, t:t + 1], c) for t in range(5)], dim=2)
        torch.testing.assert_close(whole, alone, rtol=1e-5, atol=1e-5)
        for kind in ("conv", "attention"):
            torch.manual_seed(0)
            n2 = randomize_zero_init(tiny(temporal=kind, cond_dim=0)).eval()
            x2 = x.clone()
            x2[:, :, 0] += 1.0
            d = (n2(x2, c) - n2(x, c)).abs().amax(dim=(0, 1, 3, 4))
            assert d[-1] > 1e-4, kind  # frame 0's change reaches frame 4 through the temporal layers


def test_condition_mask_and_unconditional_equivalence():
    net = randomize_zero_init(tiny()).eval()
    x, c = torch.randn(2, 1, 3, 16, 16), torch.randn(2)
    cond = torch.randn(2, 7, 6)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 5:] = False
    with torch.no_grad():
        y = net(x, c, cond=cond, cond_mask=mask)
        cond2 = cond.clone()
        cond2[:, 5:] = 100.0  # padded steps must not matter
        # (equal up to float32 round-off: the attention kernel's blocking depends on the masked logits)
        tol = 1e-5 * float(y.abs().max())
        torch.testing.assert_close(net(x, c, cond=cond2, cond_mask=mask), y, rtol=1e-4, atol=tol)
        # a fully masked condition is the unconditional model (what CFG dropout trains)
        u1 = net(x, c, cond=cond, cond_mask=torch.zeros_like(mask))
        torch.testing.assert_close(u1, net(x, c), rtol=1e-4, atol=tol)
        assert (u1 - y).abs().max() > 1e-4


def test_cross_attention_window_limits_reach():
    """Only cross-attention active (fresh temporal layers are identity, no pooling): with window 1, changing
    the condition at step 9 of 10 alters frames 8 and 9 only."""
    torch.manual_seed(0)
    net = tiny(pool_cond=False, cross_attn_window=1.0, temporal="conv").eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, CrossAttention):
                m.out.weight.normal_(0, 0.3)
        x, c = torch.randn(1, 1, 10, 16, 16), torch.zeros(1)
        cond = torch.randn(1, 10, 6)
        y = net(x, c, cond=cond)
        cond2 = cond.clone()
        cond2[:, 9] = torch.randn(6)  # (a constant shift would vanish in the LayerNorm)
        d = (net(x, c, cond=cond2) - y).abs().amax(dim=(0, 1, 3, 4))
    assert torch.all(d[:8] == 0) and torch.all(d[8:] > 1e-5), d


def test_super_resolution_input_and_precond():
    net = randomize_zero_init(tiny(low_res_channels=1)).eval()
    x, lr = torch.randn(2, 1, 3, 16, 16), torch.randn(2, 1, 3, 16, 16)
    with pytest.raises(ValueError, match="low_res"):
        net(x, torch.zeros(2))
    with torch.no_grad():
        a = net(x, torch.zeros(2), low_res=lr, aug_noise=torch.zeros(2))
        b = net(x, torch.zeros(2), low_res=lr, aug_noise=torch.ones(2))
        assert (a - b).abs().max() > 1e-5  # the augmentation level is seen
        # EDMPrecond scales the low-res video to unit variance and maps aug_sigma like c_noise
        P = EDMPrecond(net, sigma_data=0.25)
        sig, aug = torch.tensor([0.5, 2.0]), torch.tensor([0.0, 0.3])
        got = P(x, sig, low_res=lr, aug_sigma=aug)
        c_in = 1 / (sig**2 + 0.0625).sqrt()
        F = net(x * c_in.reshape(-1, 1, 1, 1, 1), sig.log() / 4,
                low_res=lr / (aug**2 + 0.0625).sqrt().reshape(-1, 1, 1, 1, 1),
                aug_noise=aug.clamp_min(0.002).log() / 4)
        c = sig.reshape(-1, 1, 1, 1, 1)
        torch.testing.assert_close(got, 0.0625 / (c**2 + 0.0625) * x + c * 0.25 / (c**2 + 0.0625).sqrt() * F)


def test_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    a = randomize_zero_init(tiny())
    b = randomize_zero_init(tiny(use_checkpointing=True))
    b.load_state_dict(a.state_dict())
    x, cond = torch.randn(1, 1, 3, 16, 16), torch.randn(1, 4, 6)
    loss = EDMLoss()
    for net in (a, b):
        value = loss(EDMPrecond(net), x, cond=cond, sigma=torch.tensor([0.7]), noise=torch.ones_like(x))
        value.mean().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_attention_placement_by_resolution_octave():
    def kinds(res):
        n = VideoUNet(base_channels=4, channel_mults=(1, 2, 3, 4), num_res_blocks=1, resolution=res, cond_dim=4,
                      noise_emb_dim=8, num_heads=2, attn_resolutions=(16,), cross_attn_resolutions=(16, 8))
        out = []
        for s in n.down:
            out.append(tuple(type(b).__name__ for b in s.blocks if isinstance(b, (SpatialAttention, CrossAttention))))
        return [o for o in out if o]
    assert kinds(64) == [("SpatialAttention", "CrossAttention"), ("CrossAttention",)]  # 16 and 8 px levels
    assert kinds(112) == [("SpatialAttention", "CrossAttention")]  # 14 px level only (112/8)
