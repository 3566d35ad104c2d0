"""Wav2UTIDiffusion / Wav2UTIDNN behaviour: loss, CFG dropout, cascade input, long-form length,
frozen-encoder checkpoints, DNN context windows (the EMA callback: tests/test_callbacks_ema.py)."""

from __future__ import annotations

import pytest
import torch

from articulate.diffusion import EDMLoss, EDMPrecond, HeunSampler
from articulate.networks.wav2uti.dnn import FrameDNN, context_windows
from articulate.networks.wav2uti.encoders import CharacterTextEncoder, LogMelEncoder
from articulate.networks.wav2uti.fusion import AudioOnlyFusion, CrossAttentionFusion
from articulate.networks.wav2uti.unet import VideoUNet
from articulate.transforms.clips import ClipGeometry
from lightning_modules.wav2uti_diffusion import Cascade, Guidance, Wav2UTIDiffusion, resize_video
from lightning_modules.wav2uti_dnn import Wav2UTIDNN

torch.set_num_threads(1)


def _model(stage="base", text=True, res=16, context=0, low_res_ckpt=None, drop_prob=0.1, **kw):
    torch.manual_seed(0)
    net = VideoUNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, resolution=res, attn_resolutions=(),
                    cross_attn_resolutions=(8,), temporal="conv", cond_dim=16, num_heads=2,
                    low_res_channels=1 if stage == "super_resolution" else 0)
    fusion = CrossAttentionFusion(audio_dim=8, text_dim=16, cond_dim=16, num_heads=2) if text else AudioOnlyFusion(audio_dim=8, cond_dim=16)
    return Wav2UTIDiffusion(
        denoiser=EDMPrecond(net), audio_encoder=LogMelEncoder(n_mels=8), fusion=fusion,
        text_encoder=CharacterTextEncoder(dim=16, num_layers=1, num_heads=2) if text else None,
        loss=EDMLoss(), sampler=HeunSampler(num_steps=2), clips=ClipGeometry(resolution=res, frames=4, context=context),
        cascade=Cascade(stage=stage, low_res_size=8, low_res_ckpt=low_res_ckpt), guidance=Guidance(drop_prob=drop_prob),
        **kw)


def _batch(B=2, T=4, res=16):
    g = torch.Generator().manual_seed(1)
    return {"video": torch.rand(B, 1, T, res, res, generator=g) * 2 - 1,
            "audio": torch.randn(B, int(round(T * 16000 / 60)), generator=g) * 0.1,
            "text": ["ab", "a longer one"][:B]}


def test_training_loss_backward():
    m = _model()
    loss = m._loss(_batch())
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert m.fusion.audio.proj.weight.grad is not None and m.text_encoder.embed.weight.grad is not None


def test_condition_dropout_masks_whole_condition(monkeypatch):
    m = _model(drop_prob=1.0)
    seen = {}

    def spy(denoiser, x0, cond=None, cond_mask=None, **kw):
        seen["mask"] = cond_mask
        return (x0 * 0).pow(2) + 1.0

    monkeypatch.setattr(m, "loss_fn", spy)
    m._loss(_batch())
    assert seen["mask"].shape == (2, 4) and not seen["mask"].any()
    m.guidance = Guidance(drop_prob=0.0)
    m._loss(_batch())
    assert seen["mask"].all()


def test_super_resolution_input_and_generation():
    m = _model(stage="super_resolution")
    video = _batch()["video"]
    low = m.low_res_input(video, torch.zeros(2))
    assert low.shape == video.shape
    # without noise it is the 2x2-block mean (area) image upsampled bilinearly: check one frame by hand
    down = resize_video(video, 8, "area")
    f = video[0, 0, 1]
    block = f.reshape(8, 2, 8, 2).mean(dim=(1, 3))
    torch.testing.assert_close(down[0, 0, 1], block)
    ref = torch.nn.functional.interpolate(block[None, None], size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(low[0, 0, 1], ref)
    noisy = m.low_res_input(video, torch.full((2,), 0.5), torch.Generator().manual_seed(0))
    assert abs(float((noisy - low).std()) - 0.5) < 0.03  # augmentation at the stated level
    assert torch.isfinite(m._loss(_batch()))
    feats = torch.randn(1, 4, 8)
    out = m.generate(feats, low_res=down[:1], generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, 4, 16, 16)
    with pytest.raises(ValueError, match="low-res"):
        m.generate(feats)


def test_cascaded_test_sampling_refines_the_base_stage_samples(monkeypatch):
    """With low_res_ckpt, test sampling feeds the base stage's samples (area-resized to low_res_size)
    to the SR stage; validation and runs without low_res_ckpt use the downsampled ground truth."""
    import lightning_modules.wav2uti_diffusion as wd
    from articulate.errors import InputError

    base = _model(res=16).eval()  # its 16-px samples are resized to the SR stage's 8-px input
    sr = _model(stage="super_resolution", low_res_ckpt="base.ckpt").eval()
    monkeypatch.setattr(wd, "load_base_stage", lambda path: base.to_inference())
    batch = _batch()
    with torch.no_grad():
        pred, real = sr._sample_batch(batch, 2, cascade=True)
        feats = base.audio_encoder(batch["audio"], fps=60.0, n_frames=4)
        text, mask = base.text_features({"text": batch["text"]})
        low = base.generate(feats, text, mask, generator=torch.Generator().manual_seed(1))
        expected = sr.generate(sr.audio_features(batch), *sr.text_features(batch),
                               low_res=resize_video(low, 8, "area"), generator=torch.Generator().manual_seed(0))
        oracle, _ = sr._sample_batch(batch, 2, cascade=False)
    torch.testing.assert_close(pred, expected)
    assert real is not None and not torch.allclose(pred, oracle)
    assert "base_stage" not in dict(sr.named_children())  # not trained, not saved

    other = _model(stage="super_resolution", low_res_ckpt="sr.ckpt")
    monkeypatch.setattr(wd, "load_base_stage", lambda path: _model(stage="super_resolution").to_inference())
    with pytest.raises(InputError, match="base-stage"):
        other.base_stage()


def test_long_form_generation_length_and_determinism():
    m = _model(text=False).eval()
    feats = torch.randn(1, 11, 8)  # 11 frames > clip of 4: long-form windows
    a = m.generate(feats, generator=torch.Generator().manual_seed(3))
    b = m.generate(feats, generator=torch.Generator().manual_seed(3))
    assert a.shape == (1, 1, 11, 16, 16) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)  # S_churn = 0: deterministic given the seed


def test_frozen_pretrained_encoder_not_in_checkpoint(tmp_path):
    from test_encoders import _tiny_wav2vec2

    from articulate.networks.wav2uti.encoders import Wav2Vec2Encoder

    path = _tiny_wav2vec2(tmp_path / "w2v")
    torch.manual_seed(0)
    net = VideoUNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, resolution=16, attn_resolutions=(),
                    cross_attn_resolutions=(), temporal="conv", cond_dim=16, num_heads=2)
    m = Wav2UTIDiffusion(EDMPrecond(net), Wav2Vec2Encoder(str(path)), AudioOnlyFusion(audio_dim=32, cond_dim=16),
                         clips=ClipGeometry(resolution=16, frames=4))
    ckpt = {"state_dict": m.state_dict()}
    m.on_save_checkpoint(ckpt)
    assert not any(k.startswith("audio_encoder.model.") for k in ckpt["state_dict"])
    assert any(k.startswith("denoiser.") for k in ckpt["state_dict"])
    m.on_load_checkpoint(ckpt)
    m.load_state_dict(ckpt["state_dict"], strict=True)  # restored from the reloaded encoder


def test_dnn_context_windows_and_shapes():
    x = torch.arange(5, dtype=torch.float32).reshape(1, 5, 1)
    w = context_windows(x, 2)
    assert w[0, 0].tolist() == [0, 0, 0, 1, 2] and w[0, 4].tolist() == [2, 3, 4, 4, 4]
    net = FrameDNN(in_dim=3, context=1, hidden=20, num_layers=2, out_size=8)
    assert net(torch.randn(2, 6, 3)).shape == (2, 1, 6, 8, 8)
    # frame-wise: output frame t depends on input frames t-1..t+1 only
    feats = torch.randn(1, 6, 3)
    f2 = feats.clone()
    f2[0, 5] += 1.0
    torch.testing.assert_close(net(feats)[:, :, :4], net(f2)[:, :, :4])
    m = Wav2UTIDNN(FrameDNN(in_dim=8, context=1, hidden=16, num_layers=2, out_size=16), LogMelEncoder(n_mels=8),
                   clips=ClipGeometry(resolution=16, frames=4))
    loss = m.training_step(_batch(), 0)
    assert torch.isfinite(loss)
    assert m.generate(torch.randn(1, 9, 8)).shape == (1, 1, 9, 16, 16)


def test_condition_context_reaches_the_models_and_inference_alike():
    """c frames of context: the features carry T + 2c frames, the video has T; the fused condition of a clip
    reads the speech beyond it; the module, its inference object and from_audio agree."""
    from articulate.networks.wav2uti.encoders import pad_context

    c, T = 2, 4
    m = _model(text=False, context=c).eval()
    with torch.no_grad():  # zero-initialised output layers would hide every condition from an untrained net
        for p in m.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(0, 0.1)
    feats = torch.randn(1, T + 2 * c, 8)
    out = m.generate(feats, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, T, 16, 16)
    # the margin is read: changing the speech before the clip changes the clip
    moved = feats.clone()
    moved[:, 0] += 3.0
    assert not torch.allclose(m.generate(moved, generator=torch.Generator().manual_seed(0)), out)
    # from_audio pads the utterance with c frames of silence, then generates; the same as by hand
    wav = torch.randn(int(round(T * 16000 / 60))) * 0.1
    inf = m.to_inference()
    ref = inf.generate(inf.audio_features(pad_context(wav[None], c, 16000, 60.0), T + 2 * c),
                       generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(inf.from_audio(wav.numpy(), T, seed=5), ref)
    # long-form windows slice the features with their margins: longer than a clip works and is deterministic
    long = m.generate(torch.randn(1, 11 + 2 * c, 8), generator=torch.Generator().manual_seed(3))
    assert long.shape == (1, 1, 11, 16, 16) and torch.isfinite(long).all()
    # training reads T + 2c feature frames (the batch's audio covers them)
    b = _batch(T=T + 2 * c)
    b["video"] = b["video"][:, :, :T]
    m.train()
    assert torch.isfinite(m.training_step(b, 0))
    # the DNN: the margin only feeds the context windows
    dnn = Wav2UTIDNN(FrameDNN(in_dim=8, context=2, hidden=16, num_layers=2, out_size=16), LogMelEncoder(n_mels=8),
                     clips=ClipGeometry(resolution=16, frames=T, context=c))
    f = torch.randn(1, T + 2 * c, 8)
    y = dnn.generate(f)
    assert y.shape == (1, 1, T, 16, 16)
    torch.testing.assert_close(y[0, 0, 0], dnn.network(f[:, :5], margin=c)[0, 0, 0].clamp(-1, 1))
    assert torch.isfinite(dnn.training_step(b, 0))


def test_dnn_inference_in_memory_chunks_equals_one_call():
    from articulate.inference.wav2uti import FrameRegressor

    torch.manual_seed(0)
    net = FrameDNN(in_dim=8, context=3, hidden=16, num_layers=2, out_size=16)
    for c in (0, 2, 5):
        inf = FrameRegressor(net, LogMelEncoder(n_mels=8), resolution=16, clip_frames=4, condition_context=c)
        feats = torch.randn(1, 37 + 2 * c, 8)
        whole = net(feats, margin=c).clamp(-1, 1)
        budget = 5 * net.bytes_per_frame() / 2**20  # five frames per call
        torch.testing.assert_close(inf.generate(feats, memory_budget_mb=budget), whole)
        torch.testing.assert_close(inf.generate(feats), whole)


def test_dnn_eigentongue_output_is_the_training_frames_principal_subspace():
    torch.manual_seed(0)
    net = FrameDNN(in_dim=8, context=1, hidden=16, num_layers=2, out_size=8, basis=3)
    # frames = mean + three patterns with decreasing spread (+ a little noise): the basis is those patterns
    g = torch.Generator().manual_seed(1)
    patterns = torch.linalg.qr(torch.randn(64, 3, generator=g))[0].T  # orthonormal [3, 64]
    coef = torch.randn(500, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    frames = (0.2 + coef @ patterns + 0.01 * torch.randn(500, 64, generator=g)).reshape(500, 8, 8)
    net.fit_basis(frames)
    assert bool(net.basis_fitted)
    torch.testing.assert_close(net.basis_mean, frames.reshape(500, 64).mean(0), atol=1e-5, rtol=0)
    overlap = net.basis_components @ patterns.T  # the same subspace (up to sign and rotation)
    torch.testing.assert_close((overlap**2).sum(1), torch.ones(3), atol=1e-3, rtol=0)
    torch.testing.assert_close(net.basis_scale, torch.tensor([3.0, 2.0, 1.0]), atol=0.3, rtol=0)
    out = net(torch.randn(2, 5, 8))
    assert out.shape == (2, 1, 5, 8, 8)
    # every output frame is the mean plus a combination of the basis
    resid = out.reshape(-1, 64) - net.basis_mean
    torch.testing.assert_close(resid @ net.basis_components.T @ net.basis_components, resid, atol=1e-5, rtol=0)
    # saved and reloaded with the weights
    other = FrameDNN(in_dim=8, context=1, hidden=16, num_layers=2, out_size=8, basis=3)
    other.load_state_dict(net.state_dict())
    torch.testing.assert_close(other(torch.ones(1, 2, 8)), net(torch.ones(1, 2, 8)))


def _x0_of_a_training_step(m, batch):
    """The clean video the EDM loss of one training step of ``m`` saw."""
    seen = {}
    loss_fn = m.loss_fn

    def spy(denoiser, x0, **kw):
        seen["x0"] = x0
        return loss_fn(denoiser, x0, **kw)

    m.loss_fn = spy
    m.training_step(batch, 0)
    m.loss_fn = loss_fn
    return seen["x0"]


def test_standardised_diffusion_trains_on_deviations_and_generates_in_data_scale():
    from articulate.diffusion import FrameStandardizer

    m = _model(text=False, standardizer=FrameStandardizer(resolution=16, sigma_data=0.25))
    b = _batch()
    m.standardizer.fit(b["video"][:, 0].reshape(-1, 16, 16) * 0.1 - 0.6)  # a dark, low-contrast training set
    torch.testing.assert_close(_x0_of_a_training_step(m, b), m.standardizer(b["video"]))  # the loss sees standardised video
    m.eval()
    feats = torch.randn(1, 4, 8)
    out = m.generate(feats, generator=torch.Generator().manual_seed(0))
    # the sampler runs in the standardised space; the video comes back in the data's
    from articulate.inference.wav2uti import DiffusionGenerator

    raw = DiffusionGenerator(**{**m.inference_init(), "standardizer": None}).generate(
        feats, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, m.standardizer.inverse(raw))
    assert m.to_inference().standardizer is m.standardizer


def test_speech_prior_diffusion_trains_on_the_residual_and_adds_the_prior_back():
    from articulate.diffusion import SpeechPriorStandardizer
    from articulate.inference.wav2uti import DiffusionGenerator

    m = _model(text=False, standardizer=SpeechPriorStandardizer(resolution=16, sigma_data=0.25, context=1))
    b = _batch()
    feats = m.audio_features(b)
    m.standardizer.fit([(feats, b["video"])], 0)
    torch.testing.assert_close(_x0_of_a_training_step(m, b), (b["video"] - m.standardizer.prior(feats, 0)) * m.standardizer.scale)
    m.eval()
    out = m.generate(feats, generator=torch.Generator().manual_seed(0))
    raw = DiffusionGenerator(**{**m.inference_init(), "standardizer": None}).generate(
        feats, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, raw / m.standardizer.scale + m.standardizer.prior(feats, 0))
    with pytest.raises(ValueError, match="base stage"):
        _model(stage="super_resolution", standardizer=SpeechPriorStandardizer(resolution=16))


def test_a_speech_prior_checkpoint_loads_for_synthesis(tmp_path):
    """The fitted prior (its weight's shape set by the fit) is saved with the weights and loads through the one
    checkpoint reader into the inference object, which adds it back."""
    from badinput_helpers import _save_untrained, wav2uti_stack, wav2uti_tiny
    from test_wav2uti_data import make_cohort

    from articulate.inference import load_predictor

    cohort = make_cohort(tmp_path / "cohort", speakers=3, utterances=1, seconds=0.3)
    feats = torch.randn(2, 6, 80, generator=torch.Generator().manual_seed(0))
    fitted = {}

    def fit(model):
        video = torch.rand(2, 1, 6, model.resolution, model.resolution) * 2 - 1
        model.standardizer.fit([(feats, video)], 0)
        fitted["prior"] = model.standardizer.prior(feats, 0)

    ckpt = _save_untrained(wav2uti_stack(None) + [wav2uti_tiny(tmp_path, cohort, None)],
                           ["--model.init_args.standardizer=articulate.diffusion.SpeechPriorStandardizer"],
                           tmp_path / "model.ckpt", setup=fit)
    gen = load_predictor(ckpt, "wav2uti")
    assert type(gen.standardizer).__name__ == "SpeechPriorStandardizer" and gen.standardizer.weight.shape[0] == 80 * 11
    torch.testing.assert_close(gen.standardizer.prior(feats, 0), fitted["prior"])


def test_the_loss_context_holds_what_the_edm_loss_compares():
    """``loss_edm`` is the mean of lambda(sigma) (denoised - target)^2 over the context's own tensors (EDM's weight
    written out here), the target is the batch's clips (no standardizer), and a second draw with the same
    generator gives the same context (the validation loss's fixed noise)."""
    m = _model()
    b = _batch()
    loss, ctx = m._edm(b, generator=torch.Generator().manual_seed(3), drop=False)
    sd, sigma = 0.25, ctx["sigma"].reshape(-1, 1, 1, 1, 1)
    want = ((sigma**2 + sd**2) / (sigma * sd) ** 2 * (ctx["denoised"] - ctx["target"]) ** 2).mean()
    torch.testing.assert_close(loss, want)
    assert ctx["target"] is b["video"] and ctx["sigma"].shape == (2,) and ctx["batch_size"] == 2
    assert ctx["cond"].shape[:2] == ctx["cond_mask"].shape == (2, 4) and ctx["audio_feats"].shape[:2] == (2, 4)
    again, ctx2 = m._edm(b, generator=torch.Generator().manual_seed(3), drop=False)
    assert torch.equal(again, loss) and torch.equal(ctx2["sigma"], ctx["sigma"])


def test_optimizer_and_scheduler_come_from_the_callables():
    import functools

    from torch.optim.lr_scheduler import LinearLR

    m = _model(optimizer=functools.partial(torch.optim.Adam, lr=2e-3, weight_decay=0.5),
               lr_scheduler=functools.partial(LinearLR, start_factor=0.25, total_iters=4))
    (opt,), (sched,) = m.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 2e-3 * 0.25
    assert opt.param_groups[0]["weight_decay"] == 0.5 and sched["interval"] == "step"
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in m.parameters() if p.requires_grad}
    dnn = Wav2UTIDNN(FrameDNN(in_dim=8, context=1, hidden=16, num_layers=2, out_size=16), LogMelEncoder(n_mels=8),
                     clips=ClipGeometry(resolution=16, frames=4), optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
    (opt,) = dnn.configure_optimizers()
    assert opt.param_groups[0]["lr"] == 1e-3 and len(opt.param_groups[0]["params"]) == len(list(dnn.network.parameters()))
    with pytest.raises(ValueError, match="no optimizer"):
        _model().configure_optimizers()
