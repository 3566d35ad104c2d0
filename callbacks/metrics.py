"""Compute the paper metrics at validation and test, for both directions, exactly under DDP.

The LightningModule's ``validation_step``/``test_step`` returns the outputs dict described in
:mod:`callbacks` (``mel_pred``/``mel_target``, ``audio_pred``/``audio_target``/``sample_rate``,
``video_pred``/``video_target`` in [0, 1], ``sample_index``); this callback feeds the metrics
named in the config and logs ``val/<name>`` and ``test/<name>`` once per epoch. Values are
computed from the de-duplicated union of all ranks' rows, so 1 GPU and N GPUs log the same
number. Example (YAML)::

    trainer:
      callbacks:
        - class_path: callbacks.metrics.MetricsCallback
          init_args:
            val_metrics: [corr2d, pesq]
            test_metrics: [corr2d, pesq]
            options: {pesq: {mode: wb}}

Metrics whose features come from random-initialised networks (``options: {fid: {random_init:
true}}``, tests only) are logged as ``<stage>/<name>_NOT_COMPARABLE``. PESQ also logs
``<stage>/pesq_failed`` (waveforms PESQ could not score, e.g. silence).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from articulate.metrics.dedup import SampleMetric

STAGES = ("val", "test")


def build_metric(name: str, options: dict[str, Any] | None = None) -> SampleMetric:
    """The metric object for a registered metric name (``corr2d``, ``pesq``, ...; see
    ``articulate.metrics.registry``) or a metric class path, with constructor options."""
    from articulate.metrics.registry import metric_class

    options = dict(options or {})
    cls = metric_class(name)
    if options.get("random_init") == "auto":
        # Out-of-the-box configs: pretrained features when installed, else a labelled stand-in, so a
        # fresh offline machine still trains; the figures are then logged as NOT_COMPARABLE.
        from articulate.errors import MissingPretrainedError

        try:
            return cls(**{**options, "random_init": False})
        except MissingPretrainedError as err:
            rank_zero_warn(f"{name}: pretrained features not installed, using random-initialised stand-in "
                           f"features (logged as *_NOT_COMPARABLE). {err}")
            return cls(**{**options, "random_init": True})
    return cls(**options)


def metric_key(stage: str, name: str, metric: SampleMetric) -> str:
    return f"{stage}/{name}" if metric.comparable else f"{stage}/{name}_NOT_COMPARABLE"


class MetricsCallback(Callback):
    """Feed and log the configured metrics at validation and test.

    Args:
        val_metrics: metric names computed each validation epoch (the sanity check is skipped).
        test_metrics: names computed at test; ``None`` = the same as ``val_metrics``.
        options: per-metric constructor arguments, e.g. ``{pesq: {mode: nb}, lpips: {net: alex}}``.
        inputs: per-metric ``[pred_key, target_key]`` overriding the defaults, e.g.
            ``{corr2d: [video_pred, video_target]}`` to correlate ultrasound frames.
    """

    def __init__(self, val_metrics: list[str] | None = None, test_metrics: list[str] | None = None,
                 options: dict[str, dict[str, Any]] | None = None, inputs: dict[str, list[str]] | None = None):
        super().__init__()
        self.val_metrics = list(val_metrics) if val_metrics is not None else ["corr2d"]
        self.test_metrics = list(test_metrics) if test_metrics is not None else list(self.val_metrics)
        self.options = dict(options or {})
        self.inputs = {k: tuple(v) for k, v in (inputs or {}).items()}
        from articulate.metrics.registry import metric_class

        for name in [*self.val_metrics, *self.test_metrics, *self.options, *self.inputs]:
            try:
                metric_class(name)
            except ValueError as err:
                raise ValueError(f"MetricsCallback: {err}") from None
        for name, keys in self.inputs.items():
            if len(keys) != 2:
                raise ValueError(f"MetricsCallback: inputs[{name!r}] must be [pred_key, target_key], got {list(keys)}")
        self.metrics: dict[str, dict[str, SampleMetric]] = {"val": {}, "test": {}}
        # Last computed values per stage (float64, identical on every rank): for tools and tests.
        self.results: dict[str, dict[str, float]] = {"val": {}, "test": {}}
        # The last test pass's values per sample (metric name -> {sample_index: value}; this process's samples):
        # what the reproduction's paired tests per recording read.
        self.test_per_sample: dict[str, dict[int, float]] = {}

    # ------------------------------------------------------------------ set-up
    def _names(self, stage: str) -> list[str]:
        return self.val_metrics if stage == "val" else self.test_metrics

    def _ensure(self, stage: str, device: torch.device) -> dict[str, SampleMetric]:
        built = self.metrics[stage]
        for name in self._names(stage):
            if name not in built:
                metric = build_metric(name, self.options.get(name))
                if not metric.comparable:
                    rank_zero_warn(f"{stage}/{name}: {metric.label}; logged as {metric_key(stage, name, metric)}")
                built[name] = metric
            built[name].to(device)
        return built

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Build early so that missing pretrained weights fail before training, not after an epoch.
        if stage in ("fit", "validate"):
            self._ensure("val", pl_module.device)
        if stage == "test":
            self._ensure("test", pl_module.device)

    # ------------------------------------------------------------------ feeding
    def _update(self, stage: str, pl_module: LightningModule, outputs: Any, batch: Any) -> None:
        names = self._names(stage)
        if not names:
            return
        if isinstance(outputs, dict) and not outputs:
            return  # the module scored nothing in this batch (e.g. beyond its sampling budget)
        if not isinstance(outputs, dict):
            raise TypeError(f"MetricsCallback: {type(pl_module).__name__}.{'validation' if stage == 'val' else 'test'}_step "
                            f"must return a dict of outputs (see the callbacks package docstring), got {type(outputs).__name__}")
        index = outputs.get("sample_index")
        if index is None and isinstance(batch, dict):
            index = batch.get("sample_index")
        valid = outputs.get("valid")
        from articulate.metrics.registry import default_inputs

        for name, metric in self._ensure(stage, pl_module.device).items():
            pred_key, target_key = self.inputs.get(name) or default_inputs(name)
            extra_keys = metric.extra_inputs  # outputs a metric takes besides the pair, by keyword (PESQ: the sample rate)
            missing = [k for k in (pred_key, target_key, *extra_keys) if outputs.get(k) is None]
            if missing:
                raise KeyError(f"MetricsCallback: metric {name!r} needs outputs {missing} from "
                               f"{type(pl_module).__name__}; it returned {sorted(outputs)}")
            pred, target = outputs[pred_key], outputs[target_key]
            if isinstance(pred, torch.Tensor):
                pred, target = pred.detach(), target.detach()
            extra = {k: outputs[k] for k in extra_keys}
            metric.update(pred, target, **extra, sample_index=index, valid=valid)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking:
            self._update("val", pl_module, outputs, batch)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update("test", pl_module, outputs, batch)

    # ------------------------------------------------------------------ reducing and logging
    def _reset(self, stage: str) -> None:
        for metric in self.metrics[stage].values():
            metric.reset()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset("val")

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset("test")

    def _log(self, stage: str, pl_module: LightningModule) -> None:
        results: dict[str, float] = {}
        for name, metric in self.metrics[stage].items():
            # compute() is collective under DDP, so every rank calls it even without local updates
            # (a rank with no rows contributes an empty state; torchmetrics' warning about it is noise).
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                value = float(metric.compute())
            key = metric_key(stage, name, metric)
            results[key] = value
            # The value is already global and identical on all ranks; sync_dist=True (a mean of
            # equal numbers) only keeps Lightning from warning about unsynced epoch-level logs.
            pl_module.log(key, value, sync_dist=True, prog_bar=name in ("corr2d", "pesq", "rmse"))
            for k, v in metric.summary().items():  # metrics with several figures (contour: px, mm, found)
                sub = f"{key}_{k}"
                if k != metric.report and isinstance(v, float) and math.isfinite(v):
                    results[sub] = v
                    pl_module.log(sub, v, sync_dist=True)
            if metric.failed is not None:  # metrics that may refuse rows (PESQ: silence) report how many
                results[f"{stage}/{name}_failed"] = float(metric.failed)
                pl_module.log(f"{stage}/{name}_failed", float(metric.failed), sync_dist=True)
            if stage == "test":
                self.test_per_sample[name] = metric.per_sample()
            metric.reset()
        self.results[stage] = results

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            self._reset("val")
            return
        self._log("val", pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log("test", pl_module)


def format_results(results: dict[str, float]) -> str:
    """One line per metric, NaN shown as 'n/a'."""
    return "\n".join(f"{k:<28} {'n/a' if math.isnan(v) else f'{v:.4f}'}" for k, v in results.items())


__all__ = ["MetricsCallback", "build_metric", "metric_key", "format_results"]
