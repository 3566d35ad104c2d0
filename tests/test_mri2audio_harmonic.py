"""The source-filter decoder of F (articulate/networks/mri2audio/harmonic.py), its pitch targets and its loss."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from articulate.networks.mri2audio.frame_translator import FrameTranslator
from articulate.networks.mri2audio.harmonic import HarmonicComb, HarmonicFrameTranslator
from articulate.networks.mri2audio.losses import PitchLoss
from articulate.signal.mel import MelConfig, mel_basis
from articulate.signal.pitch import hz_to_semitones, semitones_to_hz, track_pitch

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = MelConfig()


def hann_comb(f0: np.ndarray) -> np.ndarray:
    """The exact comb, independently: every harmonic's periodic-Hann response sinc(b) / (1 - b^2) squared, summed over
    all harmonics below Nyquist, through librosa's filterbank, relative to a flat spectrum: ``[len(f0), n_mels]``."""
    df = CFG.sr / CFG.n_fft
    bins = np.arange(CFG.n_freqs)
    out = []
    for f in np.atleast_1d(f0):
        b = bins[:, None] - np.arange(1, int(CFG.sr / 2 // f) + 1)[None] * f / df
        near = np.abs(np.abs(b) - 1) < 1e-6
        resp = np.where(near, 0.5, np.sinc(b) / np.where(near, 2.0, 1 - b ** 2))
        out.append((resp ** 2).sum(1) * f / (1.5 * df))
    basis = mel_basis(CFG)
    return (np.stack(out) @ basis.T) / basis.sum(1)


@pytest.mark.parametrize("f0", [110.0, 187.3, 250.0])
def test_comb_matches_the_mel_of_a_harmonic_series(f0):
    """The comb is the mel of equal-amplitude harmonics (random phases) relative to a flat spectrum of the same
    mean power, computed by librosa's STFT and filterbank: within 0.3 dB in every band that holds power."""
    sr = CFG.sr
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    y = sum(np.cos(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(1, int((sr / 2 - 50) // f0) + 1))
    spec = np.abs(librosa.stft(y, n_fft=CFG.n_fft, hop_length=CFG.hop_length, window="hann")) ** 2
    mean = spec[:, 10:-10].mean(axis=1)
    basis = mel_basis(CFG)
    ref = (basis @ mean) / (basis @ np.full_like(mean, mean.mean()))
    ours = HarmonicComb(CFG)(torch.tensor([[f0, f0]]))[0].numpy()
    assert ours.shape == (CFG.n_mels, 2)
    held = ref > 0.05
    np.testing.assert_allclose(10 * np.log10(ours[held, 0]), 10 * np.log10(ref[held]), atol=0.5)
    np.testing.assert_allclose(hann_comb(f0)[0][held], ref[held], rtol=0.03)  # the reference of the next test
    assert (ours[~held, 0] < 0.1).all()
    assert np.abs(ours[-CFG.n_mels // 4:, 0] - 1).max() < 0.15  # the top bands hold many harmonics: near flat


@pytest.mark.parametrize("f0,sd", [(110.0, 0.5), (187.3, 1.0), (250.0, 2.0)])
def test_uncertain_comb_is_the_expected_comb(f0, sd):
    """Under F0 ~ f0 * 2^(N(0, sd^2) / 12) the comb is the mean of the exact combs of 2,000 draws: within 1 dB where
    a band holds a quarter of the flat power or more; the upper harmonics blur first."""
    draws = f0 * 2 ** (np.random.default_rng(0).normal(0, sd, 2000) / 12)
    ref = hann_comb(draws).mean(0)
    ours = HarmonicComb(CFG)(torch.tensor([[f0]]), torch.tensor([[sd]]))[0, :, 0].numpy()
    held = ref > 0.25
    np.testing.assert_allclose(10 * np.log10(ours[held]), 10 * np.log10(ref[held]), atol=1.0)
    sharp = HarmonicComb(CFG)(torch.tensor([[f0]]))[0, :, 0].numpy()
    assert np.abs(ours[20:40] - 1).mean() < np.abs(sharp[20:40] - 1).mean()


def test_pitch_track_reads_a_glide_and_marks_silence_unvoiced():
    sr, hop = CFG.sr, CFG.hop_length
    t = np.arange(sr) / sr
    f0 = 120 * 2 ** (t / 2)  # half an octave up over one second
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = 0.3 * sum(np.sin(h * phase) / h for h in range(1, 6))
    y[sr // 2:sr // 2 + 4000] = 0.0
    track = track_pitch(y, CFG)
    assert np.isfinite(track.semitones).all()
    frame_t = np.arange(len(track.semitones)) * hop / sr
    sound = (np.abs(frame_t - (sr // 2 + 2000) / sr) > 0.15) & (frame_t > 0.05) & (frame_t < 0.95)
    assert track.voiced[sound].mean() > 0.9
    assert not track.voiced[np.abs(frame_t - (sr // 2 + 2000) / sr) < 0.05].any()
    ok = sound & track.voiced
    np.testing.assert_allclose(track.semitones[ok], hz_to_semitones(120 * 2 ** (frame_t[ok] / 2)), atol=0.25)
    st, voiced = track.at(hop * 10, 5)  # a crop starting on frame 10 reads frames 10-14
    np.testing.assert_allclose(st, track.semitones[10:15])
    np.testing.assert_array_equal(voiced, track.voiced[10:15])
    np.testing.assert_allclose(semitones_to_hz(hz_to_semitones(np.array([80.0, 260.0]))), [80.0, 260.0])


def tiny(cls, **kw):
    torch.manual_seed(0)
    return cls(frame_channels=(4, 8), frame_grid=2, temporal_channels=8, utterance_channels=2, subject_channels=4, **kw)


def test_harmonic_translator_starts_as_the_frame_translator_and_routes_its_gradients():
    plain, harmonic = tiny(FrameTranslator), tiny(HarmonicFrameTranslator)
    x = torch.rand(2, 1, 6, 16, 16)
    plain.eval(), harmonic.eval()
    out, ref = harmonic(x), plain(x)
    assert out.mel.shape == ref.mel.shape == (2, 1, 64, 64) and out.pitch.shape == (2, 64)
    assert ref.pitch is None
    torch.testing.assert_close(out.pitch, torch.full((2, 64), 7.0))  # the pitch head starts at its centre
    # depth 0.05 at the start: the comb moves each band by at most 10 log10(1 - 0.05) dB downwards
    drop = (ref.mel - out.mel) * (CFG.db_max - CFG.db_min)
    assert drop.max() <= -10 * np.log10(0.95) + 1e-4
    harmonic.train()
    out = harmonic(x)
    out.mel.sum().backward(retain_graph=True)
    assert harmonic.pitch_out.weight.grad is None or harmonic.pitch_out.weight.grad.abs().sum() == 0  # comb drawn detached
    assert harmonic.depth_out.weight.grad.abs().sum() > 0
    harmonic.zero_grad()
    target = torch.full((2, 64), 9.0)
    voiced = torch.zeros(2, 64, dtype=torch.bool)
    voiced[:, 10:30] = True
    loss = PitchLoss()({"pitch": out.pitch, "pitch_target": target, "voiced": voiced})["loss_pitch"]
    torch.testing.assert_close(loss, torch.tensor(4.0))  # (7 - 9)^2 on the voiced frames only
    loss.backward()
    assert harmonic.pitch_out.bias.grad.abs().sum() > 0


def test_harmonic_mel_peaks_at_the_predicted_harmonics():
    """With full depth at F0 = 200 Hz the decoded mel has the (sharp) comb's peaks and troughs around the envelope."""
    f = tiny(HarmonicFrameTranslator, pitch_uncertainty=False).eval()
    with torch.no_grad():
        f.depth_out.bias.fill_(30.0)  # depth 1 in float32
        f.pitch_out.bias.fill_((float(hz_to_semitones(200.0)) - 7.0) / 6.0)
        f.mel_out.weight.zero_()
        f.mel_out.bias.zero_()  # envelope 0.5 everywhere
    x = torch.rand(1, 1, 6, 16, 16)
    mel = f(x).mel[0, 0, :, 0]
    comb = HarmonicComb(CFG)(torch.tensor([[200.0]]))[0, :, 0]
    expected = (0.5 + 10 * torch.log10(comb.clamp_min(1e-6)) / (CFG.db_max - CFG.db_min)).clamp(0, 1)
    torch.testing.assert_close(mel, expected, atol=1e-3, rtol=0)  # 0.14 dB: float32 sums in the empty bands
    given = torch.full((1, 64), float(hz_to_semitones(200.0)))
    f.pitch_out.bias.data.fill_(0.0)  # its own reading now 150 Hz; a given F0 overrides it
    out = f(x, pitch=given)
    torch.testing.assert_close(out.mel[0, 0, :, 0], expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.pitch, torch.full((1, 64), 7.0))  # the output still reports the head's reading


def test_pitch_loss_says_what_it_needs():
    with pytest.raises(ValueError, match="pitch head"):
        PitchLoss()({"pitch": None})
    with pytest.raises(ValueError, match="data.init_args.pitch: true"):
        PitchLoss()({"pitch": torch.zeros(1, 4), "pitch_target": None, "voiced": None})
    zero = PitchLoss()({"pitch": torch.zeros(1, 4), "pitch_target": torch.ones(1, 4), "voiced": torch.zeros(1, 4, dtype=torch.bool)})
    assert zero["loss_pitch"] == 0
    with pytest.raises(ValueError, match="n_mels"):
        HarmonicFrameTranslator(n_mels=32)


def test_translator_module_trains_the_pitch_head_on_the_tracked_f0_and_scores_it():
    """In MRI2AudioTranslator: loss_pitch (weighted by its lambda) moves the pitch head towards the batch's F0 of both
    halves of each pair; validation logs the head's error on the voiced frames."""
    import lightning as L
    from test_mri2audio_training import PAPER_LAMBDAS, FakePairs, paper_optimizers, tiny_networks
    from torch.utils.data import DataLoader

    from lightning_modules.mri2audio_translator import MRI2AudioTranslator

    class WithPitch(FakePairs):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            voiced = torch.arange(16) >= 4
            return {**item, "pitch": torch.full((16,), 10.0), "voiced": voiced,
                    "pitch_pair": torch.full((16,), 10.0), "voiced_pair": voiced}

    _, a, d = tiny_networks()
    torch.manual_seed(0)
    f = HarmonicFrameTranslator(frame_channels=(4, 8), frame_grid=2, temporal_channels=8, utterance_channels=2,
                                subject_channels=4, n_mels=16, n_frames=16, mel=MelConfig(n_mels=16))
    model = MRI2AudioTranslator(f, a, d, lambdas={**PAPER_LAMBDAS, "loss_pitch": 1.0}, losses=[PitchLoss()],
                                optimizers=paper_optimizers())
    model.eval_audio = False
    ds = WithPitch(4)
    tr = L.Trainer(accelerator="cpu", max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1)
    tr.fit(model, DataLoader(ds, batch_size=2), DataLoader(ds, batch_size=2))
    assert "train/loss_pitch" in tr.callback_metrics
    model.eval()
    with torch.no_grad():
        pitch = f(model.attend(torch.stack([ds[i]["mri"] for i in range(4)]))[0]).pitch
    assert ((pitch - 10.0) ** 2).mean() < 9.0  # from (7 - 10)^2 = 9 at the start
    val = tr.callback_metrics["val/pitch_mse_semitones"].item()
    assert val == pytest.approx(((pitch[:, 4:] - 10.0) ** 2).mean().item(), rel=1e-4)
    result = tr.test(model, DataLoader(ds, batch_size=2), verbose=False)[0]
    assert result["test/pitch_mse_semitones"] == pytest.approx(val, rel=1e-4)
    from articulate.metrics.functional import corr2d

    with torch.no_grad():  # the decoder at the tracked F0 (the head's ceiling), each batch of 2 scored as the metric does
        batches = [[ds[i] for i in (j, j + 1)] for j in (0, 2)]
        given = torch.cat([corr2d(f(model.attend(torch.stack([it["mri"] for it in items]))[0],
                                    pitch=torch.stack([it["pitch"] for it in items])).mel,
                                  torch.stack([it["mel"] for it in items])) for items in batches])
    assert result["test/corr2d_given_pitch"] == pytest.approx(given.mean().item(), rel=1e-4)


def test_gaussian_nll_trains_the_sd_to_the_error_and_leaves_the_mean_to_the_squared_error():
    pred = torch.zeros(1, 50, requires_grad=True)
    log_sd = torch.zeros(1, 50, requires_grad=True)
    target = torch.linspace(-2, 2, 50)[None]
    voiced = torch.ones(1, 50, dtype=torch.bool)
    ctx = {"pitch": pred, "pitch_sd": log_sd.exp(), "pitch_target": target, "voiced": voiced}
    PitchLoss("gaussian_nll")(ctx)["loss_pitch"].backward()
    mse_grad = torch.autograd.grad(PitchLoss("mse")({**ctx, "pitch_sd": None})["loss_pitch"], pred)[0]
    torch.testing.assert_close(pred.grad, mse_grad)
    # d/d log sd of (e / sd)^2 / 2 + log sd at sd = 1: 1 - e^2, per frame over the 50 frames
    torch.testing.assert_close(log_sd.grad, (1 - target ** 2) / 50)
    f = tiny(HarmonicFrameTranslator, sd_init=2.5).eval()
    torch.testing.assert_close(f(torch.rand(1, 1, 6, 16, 16)).pitch_sd, torch.full((1, 64), 2.5))
    with pytest.raises(ValueError, match="sd_init"):
        tiny(HarmonicFrameTranslator, sd_init=20.0)


def test_pitch_loss_without_pitch_targets_is_refused_before_training():
    import lightning as L
    from test_mri2audio_training import PAPER_LAMBDAS, paper_optimizers, tiny_networks

    from articulate.errors import InputError
    from lightning_modules.mri2audio_translator import MRI2AudioTranslator

    class NoPitch(L.LightningDataModule):
        pitch = False

        def train_dataloader(self):
            raise AssertionError("training started")

    _, a, d = tiny_networks()
    f = tiny(HarmonicFrameTranslator)
    model = MRI2AudioTranslator(f, a, d, lambdas={**PAPER_LAMBDAS, "loss_pitch": 1.0}, losses=[PitchLoss()],
                                optimizers=paper_optimizers())
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(InputError, match="PitchLoss needs data.init_args.pitch: true"):
        trainer.fit(model, datamodule=NoPitch())
