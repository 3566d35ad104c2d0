"""MRI2AudioTranslator / Lip2AudSpec LightningModules on tiny fake tensors: gradient routing, optimizers,
mean-mel baseline, checkpoint metadata. (End-to-end CLI fits are in test_mri2audio_fit.py.)"""

from __future__ import annotations

import copy
import functools

import lightning as L
import numpy as np
import pytest
import torch
from helpers import config_callable, config_value
from torch.utils.data import DataLoader, Dataset

from articulate.networks.mri2audio.attention import ResidualAttention
from articulate.networks.mri2audio.discriminator import MelDiscriminator
from articulate.networks.mri2audio.lip2audspec import Lip2AudSpecNet
from articulate.networks.mri2audio.losses import AdversarialLoss, PairwiseKL, ReconstructionLoss
from articulate.networks.mri2audio.translator import HeterogeneousTranslator
from articulate.signal.mel import MelConfig
from lightning_modules.lip2audspec import Lip2AudSpec
from lightning_modules.mri2audio_translator import MRI2AudioTranslator, OracleMaskTranslator

T, S, M = 4, 16, 16  # frames, frame size, mel size
PAPER_LAMBDAS = config_value("configs/mri2audio.yaml", "model", "init_args", "lambdas")


def paper_optimizers() -> dict:
    """The optimizers of configs/mri2audio.yaml, as callables."""
    specs = config_value("configs/mri2audio.yaml", "model", "init_args", "optimizers")
    return {name: config_callable(spec) for name, spec in specs.items()}


def recording(*names: str) -> dict:
    return {name: functools.partial(RecordingSGD, name=name) for name in names}


class FakePairs(Dataset):
    """Random MRI/mel pairs in the DataModule's batch format (pairs on)."""

    def __init__(self, n: int = 4):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {
            "mri": torch.rand(1, T, S, S, generator=g),
            "mel": torch.rand(1, M, M, generator=g),
            "mri_pair": torch.rand(1, T, S, S, generator=g),
            "mel_pair": torch.rand(1, M, M, generator=g),
            "same_utterance": torch.tensor(i % 2 == 0),
            "utterance": torch.tensor(i % 2),
            "subject": torch.tensor(i),
        }


def tiny_networks(seed: int = 0):
    torch.manual_seed(seed)
    f = HeterogeneousTranslator(encoder_channels=(4, 8), decoder_channels=(4,), utterance_channels=2, subject_channels=4,
                                latent_size=4)
    a = ResidualAttention(channels=(4, 8))
    d = MelDiscriminator(channels=(4, 8), hidden=8, pool_size=4)
    return f, a, d


def params_of(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, module.parameters()))


def trainer(**kw) -> L.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    args.update(kw)
    return L.Trainer(**args)


class RecordingSGD(torch.optim.SGD):
    """SGD that records, at each step, its gradients and which of the model's networks changed."""

    log: list = []
    nets: dict = {}

    def __init__(self, params, name: str, lr: float = 0.1):
        super().__init__(params, lr=lr)
        self.name = name

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad.clone() for g in self.param_groups for p in g["params"]]
        before = {k: params_of(m) for k, m in self.nets.items()}
        out = super().step(closure)
        moved = {k for k, m in self.nets.items() if changed(before[k], m)}
        self.log.append((self.name, moved, grads))
        return out


def test_each_optimizer_steps_only_its_network_and_gradients_are_routed():
    f, a, d = tiny_networks()
    f.sample_noise = lambda like: torch.full_like(like, 0.3)  # fixed eps to recompute the step below
    f0, a0, d0 = copy.deepcopy(f), copy.deepcopy(a), copy.deepcopy(d)
    RecordingSGD.log, RecordingSGD.nets = [], {"translator": f, "attention": a, "discriminator": d}
    assert PAPER_LAMBDAS == {"loss_rec": 1.0, "loss_kl": 0.5, "loss_adv": 0.5}  # the paper's beta and lambda
    model = MRI2AudioTranslator(f, a, d, pairwise_loss=PairwiseKL(), lambdas=PAPER_LAMBDAS,
                                optimizers=recording("translator", "attention", "discriminator"))
    batch = next(iter(DataLoader(FakePairs(4), batch_size=4)))
    trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(model, DataLoader(FakePairs(4), batch_size=4))

    log = RecordingSGD.log
    assert [name for name, _, _ in log] == ["discriminator", "translator", "attention"]
    for name, moved, _ in log:
        assert moved == {name}, f"{name}'s optimizer changed {moved}"

    # Independent recomputation of the three gradients.
    lr = 0.1
    mri = torch.cat([batch["mri"], batch["mri_pair"]])
    mel = torch.cat([batch["mel"], batch["mel_pair"]])
    x, _ = a0(mri)
    out = f0(x)
    adv = AdversarialLoss()
    loss_d = adv.discriminator_loss(d0(mel), d0(out.mel.detach()))
    g_d = torch.autograd.grad(loss_d, list(d0.parameters()))
    for g, got in zip(g_d, log[0][2]):
        torch.testing.assert_close(got, g)
    with torch.no_grad():  # D after its step
        for p, g in zip(d0.parameters(), g_d):
            p -= lr * g
    rec = ReconstructionLoss()(out.mel, mel)
    kl = PairwiseKL()(out.mu[:4], out.logvar[:4], out.mu[4:], out.logvar[4:], weight=0.5 * batch["same_utterance"].float())
    total = rec + kl + 0.5 * adv.generator_loss(d0(out.mel))
    g_f = torch.autograd.grad(total, list(f0.parameters()), retain_graph=True)
    g_a = torch.autograd.grad(rec, list(a0.parameters()), retain_graph=True)
    g_a_total = torch.autograd.grad(total, list(a0.parameters()))
    for g, got in zip(g_f, log[1][2]):
        torch.testing.assert_close(got, g)
    for g, got in zip(g_a, log[2][2]):
        torch.testing.assert_close(got, g)
    # The routing matters: the total loss would have given A a different gradient.
    assert any(not torch.allclose(g1, g2) for g1, g2 in zip(g_a, g_a_total))


def test_oracle_mask_feeds_f_the_region_masked_frames():
    """With ``oracle_mask`` F reads m * x, m = o outside the batch's motion region and 1 inside, in training (the
    pair partners with their own regions) and evaluation; without the region it says what is missing."""
    o = 0.25
    f, _, _ = tiny_networks()
    f.sample_noise = lambda like: torch.full_like(like, 0.3)
    f0 = copy.deepcopy(f)
    RecordingSGD.log, RecordingSGD.nets = [], {"translator": f}

    class WithRegions(FakePairs):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            g = torch.Generator().manual_seed(100 + i)
            item["motion_region"] = (torch.rand(T, S, S, generator=g) > 0.7).float()
            item["motion_region_pair"] = (torch.rand(T, S, S, generator=g) > 0.7).float()
            return item

    model = OracleMaskTranslator(f, None, None, pairwise_loss=None, oracle_mask=o, lambdas=PAPER_LAMBDAS,
                                 optimizers=recording("translator"))
    batch = next(iter(DataLoader(WithRegions(4), batch_size=4)))
    trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(model, DataLoader(WithRegions(4), batch_size=4))
    mri = torch.cat([batch["mri"], batch["mri_pair"]])
    region = torch.cat([batch["motion_region"], batch["motion_region_pair"]])[:, None]
    x = torch.where(region > 0, mri, o * mri)
    rec = ReconstructionLoss()(f0(x).mel, torch.cat([batch["mel"], batch["mel_pair"]]))
    for g, got in zip(torch.autograd.grad(rec, list(f0.parameters())), RecordingSGD.log[0][2]):
        torch.testing.assert_close(got, g)
    model.eval()
    pred, masks = model.predict_with_masks(batch["mri"], batch["motion_region"])
    torch.testing.assert_close(masks, torch.where(batch["motion_region"][:, None] > 0, 1.0, o))
    with pytest.raises(ValueError, match="motion_region"):
        model(batch["mri"])
    with pytest.raises(ValueError, match="oracle_mask"):
        OracleMaskTranslator(*tiny_networks(), oracle_mask=0.2)  # with an A


@pytest.mark.parametrize("use_attention,use_discriminator", [(True, True), (False, True), (True, False), (False, False)])
def test_optimizers_cover_their_networks_with_paper_settings(use_attention, use_discriminator):
    """The paper config's optimizers (configs/mri2audio.yaml), one per network the model has."""
    f, a, d = tiny_networks()
    model = MRI2AudioTranslator(f, a if use_attention else None, d if use_discriminator else None,
                                optimizers=paper_optimizers())
    opts = model.configure_optimizers()
    expected = [("translator", f, 1e-3)]
    if use_attention:
        expected.append(("attention", a, 1e-3))
    if use_discriminator:
        expected.append(("discriminator", d, 1e-4))
    assert model.optimizer_names == [name for name, _, _ in expected]
    assert len(opts) == len(expected)
    for opt, (_, net, lr) in zip(opts, expected):
        assert isinstance(opt, torch.optim.Adam)
        group = opt.param_groups[0]
        assert group["lr"] == lr and tuple(group["betas"]) == (0.5, 0.999)
        assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}


class RateLog(torch.optim.SGD):
    """SGD that records the learning rate of each of its steps."""

    rates: dict = {}

    def __init__(self, params, name: str, lr: float):
        super().__init__(params, lr=lr)
        self.name = name

    def step(self, closure=None):
        self.rates.setdefault(self.name, []).append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_lr_scheduler_steps_every_optimizer_once_per_batch(schedule):
    """With torch's CosineAnnealingLR over n = epochs x batches, batch k steps every optimizer at
    lr0 * (1 + cos(pi k / n)) / 2; without a scheduler at lr0 (manual optimisation: the module steps it)."""
    f, a, d = tiny_networks()
    RateLog.rates = {}
    lr0 = {"translator": 0.01, "attention": 0.02, "discriminator": 0.005}
    epochs, batches = 2, 3
    n = epochs * batches
    sched = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=n) if schedule == "cosine" else None
    model = MRI2AudioTranslator(f, a, d, lambdas=PAPER_LAMBDAS, lr_scheduler=sched,
                                optimizers={k: functools.partial(RateLog, name=k, lr=v) for k, v in lr0.items()})
    trainer(max_epochs=epochs, limit_val_batches=0).fit(model, DataLoader(FakePairs(6), batch_size=2))
    for name, base in lr0.items():
        want = [base * (0.5 * (1 + np.cos(np.pi * k / n)) if schedule == "cosine" else 1.0) for k in range(n)]
        np.testing.assert_allclose(RateLog.rates[name], want, rtol=1e-12)
    with pytest.raises(ValueError, match="optimizers for"):
        MRI2AudioTranslator(f, a, d, optimizers={"generator": functools.partial(torch.optim.SGD, lr=0.1)})


@pytest.mark.parametrize("use_attention,use_discriminator,pairs", [(False, False, True), (True, False, False), (False, True, False)])
def test_ablations_train(use_attention, use_discriminator, pairs):
    f, a, d = tiny_networks()
    before = params_of(f)
    model = MRI2AudioTranslator(f, a if use_attention else None, d if use_discriminator else None, pairwise_loss=PairwiseKL(),
                                lambdas=PAPER_LAMBDAS, optimizers=paper_optimizers())

    class Unpaired(FakePairs):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            return {k: v for k, v in item.items() if k in ("mri", "mel", "utterance", "subject")}

    ds = FakePairs(4) if pairs else Unpaired(4)
    trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1).fit(model, DataLoader(ds, batch_size=2), DataLoader(ds, batch_size=2))
    assert changed(before, f)


def test_mean_mel_baseline_matches_numpy():
    model = MRI2AudioTranslator(*tiny_networks())
    rng = np.random.default_rng(0)
    mels = rng.random((10, 1, 4, 4)).astype(np.float32)
    utts = np.array([0, 2, 2, 0, 2, 0, 0, 2, 2, 2])  # id 1 never appears
    batches = [{"mel": torch.from_numpy(mels[i : i + 3]), "utterance": torch.from_numpy(utts[i : i + 3])} for i in range(0, 10, 3)]
    model.compute_mean_mels(batches)
    pred = model.baseline_prediction(torch.tensor([0, 2, 1, 7]))
    np.testing.assert_allclose(pred[0], mels[utts == 0].mean(0), rtol=1e-6)
    np.testing.assert_allclose(pred[1], mels[utts == 2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(pred[2], mels.mean(0), rtol=1e-6)  # unseen id: mean over all training mels
    np.testing.assert_allclose(pred[3], mels.mean(0), rtol=1e-6)


def test_validation_logs_corr2d_and_baseline():
    model = MRI2AudioTranslator(*tiny_networks())
    ds = FakePairs(4)
    model.compute_mean_mels(DataLoader(ds, batch_size=2))
    tr = trainer()
    tr.validate(model, DataLoader(ds, batch_size=4), verbose=False)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    model.eval()
    with torch.no_grad():
        pred = model(batch["mri"])
    from articulate.metrics.functional import corr2d

    assert tr.callback_metrics["val/corr2d"].item() == pytest.approx(corr2d(pred, batch["mel"]).mean().item(), rel=1e-5)
    base = model.baseline_prediction(batch["utterance"])
    assert tr.callback_metrics["val/corr2d_mean_baseline"].item() == pytest.approx(
        corr2d(base, batch["mel"]).mean().item(), rel=1e-5
    )


def test_checkpoint_metadata_roundtrip(tmp_path):
    model = MRI2AudioTranslator(*tiny_networks())
    model.mel_config = MelConfig(n_fft=512, hop_length=100)
    model.sample_rate = 16000
    model.input_shape = (4, 16, 16)
    model.compute_mean_mels([{"mel": torch.rand(3, 1, 4, 4), "utterance": torch.tensor([0, 1, 1])}])
    ckpt: dict = {}
    model.on_save_checkpoint(ckpt)
    assert ckpt["articulate"]["direction"] == "mri2audio"
    other = MRI2AudioTranslator(*tiny_networks())
    other.on_load_checkpoint(ckpt)
    assert other.mel_config == model.mel_config and other.sample_rate == 16000 and other.input_shape == (4, 16, 16)
    torch.testing.assert_close(other.mean_mel, model.mean_mel)


def test_python_built_modules_keep_only_plain_hparams():
    model = MRI2AudioTranslator(*tiny_networks(), lambdas={"loss_rec": 1.0, "loss_kl": 0.25})
    assert model.hparams["lambdas"] == {"loss_rec": 1.0, "loss_kl": 0.25}
    assert model.hparams["evaluation"]["griffin_lim"] == "librosa"  # a dataclass of settings: as its YAML form
    assert not any(isinstance(v, torch.nn.Module) for v in model.hparams.values())
    base = Lip2AudSpec(Lip2AudSpecNet(image_size=(16, 16), conv_channels=(2,) * 7, lstm_hidden=4, dense=8))
    assert "network" not in base.hparams


def test_lip2audspec_module_trains_and_uses_its_optimizer():
    torch.manual_seed(0)
    net = Lip2AudSpecNet(image_size=(S, S), window=3, temporal_valid=(6,), conv_channels=(2, 2, 2, 4, 4, 4, 4),
                         lstm_hidden=8, dense=16, out_shape=(M, M))
    spec = config_value("configs/mri2audio/lip2audspec.yaml", "model", "init_args")
    model = Lip2AudSpec(net, lambdas=spec["lambdas"], optimizer=config_callable(spec["optimizer"]))
    (opt,) = model.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-4
    before = params_of(net)
    ds = FakePairs(4)
    tr = trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    tr.fit(model, DataLoader(ds, batch_size=2), DataLoader(ds, batch_size=2))
    assert changed(before, net)
    assert "val/corr2d" in tr.callback_metrics


class FakeData(L.LightningDataModule):
    """Fake DataModule with ``train_mels`` (what the real one offers for the baseline)."""

    def __init__(self):
        super().__init__()
        self.mels = torch.rand(6, 1, M, M)
        self.utts = torch.tensor([0, 1, 0, 1, 1, 1])

    def train_dataloader(self):
        return DataLoader(FakePairs(4), batch_size=2)

    def train_mels(self):
        yield {"mel": self.mels[:3], "utterance": self.utts[:3]}
        yield {"mel": self.mels[3:], "utterance": self.utts[3:]}


def test_fresh_fit_starts_the_frame_translator_from_the_training_mels():
    """A translator with ``init_output_bias`` (the frame translator) starts from each band's mean training level."""
    from articulate.networks.mri2audio.frame_translator import FrameTranslator

    _, a, d = tiny_networks()
    torch.manual_seed(0)
    f = FrameTranslator(frame_channels=(4, 8), frame_grid=2, temporal_channels=8, utterance_channels=2, subject_channels=4,
                        n_mels=M, n_frames=M)
    model = MRI2AudioTranslator(f, a, d, lambdas=PAPER_LAMBDAS, optimizers=paper_optimizers())
    dm = FakeData()
    trainer(max_epochs=1, limit_train_batches=0, limit_val_batches=0).fit(model, datamodule=dm)
    band = dm.mels.mean(0).clamp(1e-3, 1 - 1e-3).reshape(M, -1).mean(1)
    torch.testing.assert_close(f.mel_out.bias.detach(), torch.log(band / (1 - band)))
    assert not f.mel_out.weight.detach().any()
    torch.testing.assert_close(model.baseline_prediction(torch.tensor([0]))[0], dm.mels[[0, 2]].mean(0))
