"""Training order that is reproducible, DDP-sharded and resumable mid-epoch, shared by every DataModule.

:class:`EpochSampler` yields ``(epoch, index)`` keys in a seeded per-epoch permutation; datasets draw
any randomness of an item (crop start, jitter, augmentation) from ``numpy.random.default_rng([seed,
epoch, index])``, so an epoch is reproducible, differs from the next, and does not depend on the
number of DataLoader workers or on the global RNGs.

:class:`ResumableLoader` starts each pass where the trainer is: its iterator is created at the first
batch taken from it, after Lightning has restored the checkpoint and set the sampler's epoch, and
skips the batches the trainer has already trained in that epoch, so a mid-epoch resume continues with
the next batch instead of re-training the epoch's first ones, and an end-of-epoch resume starts the
next epoch's permutation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

if TYPE_CHECKING:
    from lightning.pytorch import LightningDataModule

__all__ = ["EpochSampler", "ResumableLoader", "item_rng"]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one training item in one epoch."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


class EpochSampler(DistributedSampler):
    """Seeded per-epoch shuffle yielding ``(epoch, index)`` keys, sharded over DDP ranks.

    A ``DistributedSampler`` so that Lightning neither replaces nor wraps it and calls ``set_epoch``
    at each epoch start (also after resuming). Each rank gets ``ceil(N / world)`` keys (the
    permutation is padded by wrapping, as ``DistributedSampler`` does). :meth:`resume_at` skips the
    first items of one epoch on this rank.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int | None = None, rank: int | None = None):
        if num_replicas is None or rank is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = dist.get_world_size() if ready else 1
            rank = dist.get_rank() if ready else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._skip: tuple[int, int] | None = None

    def resume_at(self, epoch: int, items_done: int) -> None:
        """Skip this rank's first ``items_done`` keys when epoch ``epoch`` is iterated next."""
        self._skip = (int(epoch), int(items_done))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n).tolist()
        if self.total_size > n:
            order += (order * (self.total_size // max(n, 1) + 1))[: self.total_size - n]
        mine = order[self.rank:self.total_size:self.num_replicas]
        if self._skip is not None:
            epoch, done = self._skip
            self._skip = None
            if epoch == self.epoch:
                mine = mine[done:]
        for i in mine:
            yield (self.epoch, int(i))


class ResumableLoader(DataLoader):
    """A train DataLoader whose iterator starts where the trainer is: the epoch Lightning set on the sampler,
    less the batches already trained in it (``position()``, see :func:`trainer_position`).

    The DataLoader's own iterator is created at the first batch taken, not at ``iter()``, because Lightning
    calls ``iter()`` too early for a resume: before the checkpoint is restored when a module asks for
    ``trainer.estimated_stepping_batches`` in ``configure_optimizers`` (it then never hands the loader its
    saved state either), and before ``set_epoch`` in a resumed fit's first epoch, when DataLoader workers
    would already have prefetched epoch 0's batches. By the first batch both the loop progress and the
    epoch are restored. ``state_dict`` writes the position into checkpoints (and tells Lightning the loader
    is resumable); nothing needs to be loaded back.
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler, position: Callable[[], tuple[int, int]], **kwargs):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._position = position

    def __iter__(self) -> Iterator:
        return _StartsAtFirstBatch(self)

    def _start(self) -> Iterator:
        epoch, batches = self._position()
        if batches:
            self.sampler.resume_at(epoch, batches * int(self.batch_size))
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self._position()
        return {"epoch": int(epoch), "batches_done": int(batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """The position is the restored loop progress, read when the iterator starts (see the class)."""


class _StartsAtFirstBatch:
    """An iterator over a :class:`ResumableLoader` that creates the DataLoader's own one at the first ``next``."""

    def __init__(self, loader: ResumableLoader):
        self._loader, self._it = loader, None

    def __iter__(self) -> _StartsAtFirstBatch:
        return self

    def __next__(self):
        if self._it is None:
            self._it = self._loader._start()
        return next(self._it)

    def __len__(self) -> int:
        return len(self._loader)


def trainer_position(datamodule: LightningDataModule) -> Callable[[], tuple[int, int]]:
    """``(epoch, batches trained in it)`` of the DataModule's trainer, ``(0, 0)`` outside a fit. At the first batch
    of an epoch that is ``(epoch, 0)``, after a mid-epoch restore the batches the checkpoint had trained."""

    def position() -> tuple[int, int]:
        trainer = datamodule.trainer
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    return position


def pin_memory(datamodule: LightningDataModule) -> bool:
    """Pin the loaders' batches only when they go to a CUDA device: the DataModule's trainer's device, or
    CUDA being present outside a fit (pinning for a CPU run only adds a copy and a pinning thread)."""
    trainer = datamodule.trainer
    if trainer is not None:
        try:
            return trainer.strategy.root_device.type == "cuda"
        except (AttributeError, RuntimeError):
            pass
    import torch

    return torch.cuda.is_available()
