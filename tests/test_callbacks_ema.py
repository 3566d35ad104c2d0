"""The EMA callback (Lightning's WeightAveraging with EDM's ramped half-life): closed form, validation swap,
checkpoint contents."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from callbacks.ema import EDMEMA, edm_decay


def test_edm_decay_closed_form():
    # half-life ramps with the step count, then saturates: beta = 0.5 ** (1 / half-life)
    assert edm_decay(100, halflife_steps=1000, rampup_ratio=0.05) == pytest.approx(0.5 ** (1 / 5))
    assert edm_decay(10**6, halflife_steps=1000, rampup_ratio=0.05) == pytest.approx(0.5 ** (1 / 1000))
    assert edm_decay(3, halflife_steps=7, rampup_ratio=None) == pytest.approx(0.5 ** (1 / 7))


class Linear(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1, bias=False)
        self.seen: list[float] = []

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return (self.w(x) - 3 * x).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.seen.append(float(self.w.weight))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


TRAIN = DataLoader(TensorDataset(torch.linspace(0.5, 1.5, 4)[:, None]), batch_size=1)
ONE = DataLoader(TensorDataset(torch.ones(1, 1)), batch_size=1)


def fit_with_ema(model, tmp_path, *callbacks, val=None, ckpt_path=None, **trainer_kw):
    """One epoch over TRAIN with EDMEMA(half-life 2, ramp-up 0.5): (trainer, the callback, raw weight per batch)."""
    raw: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            raw.append(float(pl_module.w.weight))

    ema_cb = EDMEMA(halflife_steps=2.0, rampup_ratio=0.5)
    trainer = L.Trainer(max_epochs=1, callbacks=[Record(), ema_cb, *callbacks], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0, **trainer_kw)
    trainer.fit(model, TRAIN, val, ckpt_path=ckpt_path)
    return trainer, ema_cb, raw


def test_ema_matches_the_recursion_and_is_what_validation_and_checkpoints_see(tmp_path):
    torch.manual_seed(0)
    model = Linear()
    trainer, _, raw = fit_with_ema(model, tmp_path, val=ONE)
    # the average: first update copies, then avg = beta_n avg + (1 - beta_n) w with n = updates so far
    avg = raw[0]
    for n, w in enumerate(raw[1:], start=1):
        beta = edm_decay(n, 2.0, 0.5)
        avg = beta * avg + (1 - beta) * w
    assert model.seen[-1] == pytest.approx(avg, rel=1e-5)  # validation ran on the averaged weights
    assert float(model.w.weight) == pytest.approx(avg, rel=1e-5)  # copied in at the end of training
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    ck = torch.load(path, weights_only=True)
    assert float(ck["state_dict"]["w.weight"]) == pytest.approx(avg, rel=1e-5)


class LinearTest(Linear):
    def test_step(self, batch, batch_idx):
        self.seen.append(float(self.w.weight))


def test_a_test_after_fit_from_a_checkpoint_scores_the_averaged_weights(tmp_path):
    """`trainer.test(ckpt_path=...)` after fit (`--test_after_fit`) must score the checkpoint's average, not the raw
    weights: Lightning's WeightAveraging reloads the raw ``current_model_state`` on every checkpoint load while its
    average exists, which suits resuming a fit only."""
    torch.manual_seed(0)
    model = LinearTest()
    saver = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)  # written during the fit, as the configs' are
    trainer, _, raw = fit_with_ema(model, tmp_path, saver, limit_val_batches=0)
    path = saver.last_model_path
    ck = torch.load(path, weights_only=True)
    average, current = float(ck["state_dict"]["w.weight"]), float(ck["current_model_state"]["w.weight"])
    assert average != pytest.approx(current, rel=1e-6) and current == pytest.approx(raw[-1], rel=1e-6)
    model.w.weight.data.fill_(-7.0)  # whatever the module holds now, the test must load the checkpoint's average
    trainer.test(model, ONE, ckpt_path=str(path))
    assert model.seen[-1] == pytest.approx(average, rel=1e-6)
    # resuming the fit still restores the raw weights (and the average into the callback)
    # (nothing is left to train: restore, then the end-of-fit copy)
    _, ema2, _ = fit_with_ema(LinearTest(), tmp_path, limit_val_batches=0, ckpt_path=str(path))
    assert float(ema2._average_model.module.w.weight) == pytest.approx(average, rel=1e-6)


class SizedInSetup(Linear):
    """A buffer whose shape only the module's setup knows (as a fitted speech prior's weight)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.zeros(0, 2))

    def setup(self, stage):
        self.table = torch.full((3, 2), 7.0)


def test_a_buffer_sized_by_setup_reaches_the_average_and_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = SizedInSetup()
    trainer, ema_cb, _ = fit_with_ema(model, tmp_path, val=ONE)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["state_dict"]["table"]
    torch.testing.assert_close(saved, torch.full((3, 2), 7.0))
