"""Training progress in a log file: plain periodic lines when stderr is not a terminal.

Lightning's progress bar rewrites one line with carriage returns, which in a log file (``nohup``, a batch
job) is one endless line or nothing. When stderr is not a terminal this callback turns the bar off and prints
every ``ARTICULATE_PROGRESS_S`` seconds (30 by default) a line such as

    articulate fit: 120/420 steps, epoch 3, loss 0.1234, 1m02s elapsed, ~2m35s left

and a last one when the fit ends. On a terminal it does nothing: the bar shows the same. ``articulate fit`` adds
it to every run (``ArticulateCLI``), so configs need not list it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from lightning.pytorch import Callback

from articulate.utils.progress import Progress, _isatty


class ProgressLines(Callback):
    def __init__(self, every_s: float | None = None, stream=None):
        self.every_s = every_s
        self.stream = stream
        self._progress: Progress | None = None
        self._batches = False

    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or _isatty(self._out()):
            return
        bar = trainer.progress_bar_callback
        if bar is not None and hasattr(bar, "disable"):
            bar.disable()  # carriage-return updates are noise in a file; the lines below replace them
        total = trainer.estimated_stepping_batches
        total = int(total) if isinstance(total, (int, float)) and math.isfinite(total) else None
        # A module that steps its optimizers itself (mri2audio: F, A and D each batch) and is bounded by epochs:
        # the total counts batches while global_step counts every optimizer's steps, so count batches.
        self._batches = not pl_module.automatic_optimization and trainer.max_steps == -1
        self._progress = Progress("articulate fit", total, unit="batch" if self._batches else "step",
                                  stream=self._out(), every_s=self.every_s)
        self._progress.n = self._done(trainer)  # a resumed fit counts from its checkpoint

    def _done(self, trainer) -> int:
        if self._batches:
            return int(trainer.fit_loop.epoch_loop.batch_progress.total.processed)
        return int(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is None:
            return
        info: dict[str, Any] = {"epoch": trainer.current_epoch}
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            loss = trainer.callback_metrics.get("train/loss")
        if loss is not None and hasattr(loss, "detach"):
            loss = float(loss.detach().float().mean())
        if isinstance(loss, float):
            info["loss"] = loss
        self._progress.info = {}
        self._progress.set(self._done(trainer), **info)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._progress is not None:
            self._progress.close()  # a last line when any was printed (after_fit then sums the run up)
            self._progress = None
