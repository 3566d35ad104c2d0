"""A resumed fit ends with every tensor of the uninterrupted fit's state_dict, for every direction and from the
checkpoints a user resumes from: one written at the end of an epoch (``every_n_epochs``), ``last.ckpt`` of a
fit stopped by ``max_epochs`` and continued with more, and one written mid-epoch.

Each direction's tiny fit has 2 epochs of 3 batches and validates after every batch (so a validation, which
draws random numbers, follows each checkpoint). mri2audio stops by epochs as its configs do; wav2uti and
uti2contour by steps as theirs do (Lightning restores an end-of-epoch checkpoint differently then). wav2uti
keeps an EMA of the weights. uti2contour loads with a DataLoader worker as its presets do (a worker
prefetches batches as soon as the loader's iterator exists); the others in the main process, as the issue's
fit did (each epoch's iterator then draws its worker seeds from the global RNG).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    fit_in_process,
    make_cohort,
    mri_tiny_overlay,
    quiet_trainer,
    stack,
    wav2uti_tiny_override,
    write_yaml,
)

EPOCHS, BATCHES = 2, 3
MID = 4  # the mid-epoch checkpoint: after the first batch of the second epoch


def _direction(direction: str, tmp: Path) -> tuple[list[Path], list[str]]:
    """The configs and overrides of a tiny fit of ``direction``."""
    if direction == "mri2audio":
        configs = [*stack("mri2audio"), mri_tiny_overlay(tmp / "tiny.yaml", **quiet_trainer(tmp))]
        extra = ["--data.init_args.crops.train=3"]  # 2 training subjects x 3 crops: 3 batches of 2
    elif direction == "wav2uti":
        cohort = make_cohort(tmp / "cohort", speakers=3, utterances=2, seconds=0.5)
        configs = [*stack("wav2uti"), wav2uti_tiny_override(cohort, None, tmp)]
        extra = [f"--trainer.max_steps={EPOCHS * BATCHES}", f"--trainer.limit_train_batches={BATCHES}",
                 "--trainer.callbacks+=callbacks.ema.EDMEMA", "--trainer.callbacks.halflife_steps=2",
                 "--trainer.callbacks.rampup_ratio=0.5"]
    else:
        from test_uti2contour_fit import make_dlc_set

        data = make_dlc_set(tmp / "labeled-data")  # 3 training recordings x 4 frames
        cfg = {"trainer": quiet_trainer(tmp, max_steps=EPOCHS * BATCHES, limit_train_batches=BATCHES),
               "model": {"init_args": {"lr_scheduler": {"class_path": "articulate.optim.WarmupCosineLR",
                                                         "init_args": {"warmup_steps": 2}},
                                        "network": {"init_args": {"base_channels": 4, "depth": 2}}}},
               "data": {"init_args": {"data_dir": str(data), "input_size": [64, 80], "batch_size": 2, "num_workers": 1,
                                      "split": {"test_recordings": ["rec00"], "val_recordings": ["rec01"]}}}}
        configs = [*stack("uti2contour"), write_yaml(tmp / "tiny.yaml", cfg)]
        extra = []
    extra += ["--test_after_fit=false", "--trainer.limit_val_batches=1", "--trainer.val_check_interval=1",
              "--trainer.check_val_every_n_epoch=1", "--trainer.enable_checkpointing=true"]
    return configs, extra


class Fits:
    """The uninterrupted fit of one direction (its end state and checkpoints) and fits resumed beside it."""

    def __init__(self, direction: str, tmp: Path):
        self.direction, self.tmp = direction, tmp
        self.configs, self.extra = _direction(direction, tmp)
        self.mid = tmp / "mid.ckpt"
        self.straight = self.fit("straight", EPOCHS, "--trainer.callbacks+=helpers.SaveAndStopAt",
                                 f"--trainer.callbacks.batch={MID}", f"--trainer.callbacks.path={self.mid}",
                                 "--trainer.callbacks.stop=false")

    def fit(self, name: str, epochs: int, *more: str) -> dict[str, torch.Tensor]:
        every_epoch = ["--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                       f"--trainer.callbacks.dirpath={self.tmp / name / 'ckpt'}", "--trainer.callbacks.every_n_epochs=1",
                       "--trainer.callbacks.save_top_k=-1", "--trainer.callbacks.save_last=true"]
        cli = fit_in_process(self.configs, [*self.extra, f"--trainer.max_epochs={epochs}",
                                            f"--trainer.default_root_dir={self.tmp / name}", *every_epoch, *more])
        return {k: v.detach().clone() for k, v in cli.model.state_dict().items()}

    def check_resumed(self, ckpt: Path, name: str) -> None:
        saved = torch.load(ckpt, weights_only=True)
        assert 0 < saved["global_step"] and any(not torch.equal(v, self.straight[k]) for k, v in saved["state_dict"].items())
        resumed = self.fit(name, EPOCHS, f"--ckpt_path={ckpt}")
        assert resumed.keys() == self.straight.keys()
        differ = [k for k in self.straight if not torch.equal(self.straight[k], resumed[k])]
        largest = max(((self.straight[k] - resumed[k]).abs().max().item() for k in differ
                       if self.straight[k].is_floating_point()), default=0.0)
        assert not differ, (f"{self.direction} resumed from {ckpt.name}: {len(differ)} of {len(self.straight)} tensors "
                            f"differ from the uninterrupted fit, weights by up to {largest:.3g} (e.g. {differ[:3]})")


@pytest.fixture(scope="module", params=["mri2audio", "wav2uti", "uti2contour"])
def fits(request, tmp_path_factory) -> Fits:
    return Fits(request.param, tmp_path_factory.mktemp(f"resume-{request.param}"))


@pytest.mark.slow
def test_resume_from_an_end_of_epoch_checkpoint(fits):
    (ckpt,) = (fits.tmp / "straight" / "ckpt").glob("epoch=0-*.ckpt")
    fits.check_resumed(ckpt, "from-epoch-end")


@pytest.mark.slow
def test_resume_from_last_after_a_max_epochs_stop(fits):
    fits.fit("stopped", 1)
    fits.check_resumed(fits.tmp / "stopped" / "ckpt" / "last.ckpt", "from-last")


@pytest.mark.slow
def test_resume_from_a_mid_epoch_checkpoint(fits):
    assert torch.load(fits.mid, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches_done": MID - BATCHES}]
    fits.check_resumed(fits.mid, "from-mid-epoch")


class _Keys(torch.utils.data.Dataset):
    """Items that are their own sampler keys ``(epoch, index)``."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        return torch.tensor(key)


@pytest.mark.parametrize("workers", [0, 1])
def test_the_train_loader_starts_where_the_trainer_is_at_its_first_batch(workers):
    """Lightning may call ``iter()`` on the train loader before it restores the checkpoint (a module asking for
    ``estimated_stepping_batches`` in ``configure_optimizers``) and, resuming, before ``set_epoch``: the batches
    are still the uninterrupted epoch's after the ones already trained."""
    from datamodules.sampling import EpochSampler, ResumableLoader

    def loader(position: dict) -> tuple[ResumableLoader, EpochSampler]:
        sampler = EpochSampler(_Keys(), seed=3, num_replicas=1, rank=0)
        return ResumableLoader(_Keys(), sampler, lambda: (position["epoch"], position["done"]), batch_size=2,
                               num_workers=workers), sampler

    uninterrupted, sampler = loader({"epoch": 1, "done": 0})
    sampler.set_epoch(1)
    epoch = [b.tolist() for b in uninterrupted]
    assert len(epoch) == 4 and all(e == 1 for b in epoch for e, _ in b)

    position = {"epoch": 0, "done": 0}
    resumed, sampler = loader(position)
    it = iter(resumed)  # before the restore
    position.update(epoch=1, done=1)  # the restored loop progress: epoch 1, one batch trained
    sampler.set_epoch(1)
    assert [b.tolist() for b in it] == epoch[1:]
