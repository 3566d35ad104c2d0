"""Lightning's ``LearningRateMonitor`` that lets a run without a logger go on (``--trainer.logger false``).

The stock callback raises at the start of training when there is no logger to write to; a run
whose user turned logging off has nothing to monitor, so this one does nothing instead.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import LearningRateMonitor as _LightningLearningRateMonitor
from lightning.pytorch.utilities import rank_zero_info


class LearningRateMonitor(_LightningLearningRateMonitor):
    _off = False  # no logger: nothing to monitor (decided at the start of training)

    def on_train_start(self, trainer, *args, **kwargs) -> None:
        self._off = not trainer.loggers
        if self._off:
            rank_zero_info("LearningRateMonitor: no logger (--trainer.logger false): learning rates are not logged")
            return
        super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
        if not self._off:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer, *args, **kwargs) -> None:
        if not self._off:
            super().on_train_epoch_start(trainer, *args, **kwargs)
