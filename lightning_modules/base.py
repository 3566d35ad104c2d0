"""What every Articulate LightningModule shares: its direction, its inference object, safe checkpoints,
and a stop on non-finite losses.

* ``direction`` (class attribute) and ``inference_class``: the checkpoint records both, with the
  YAML form of the inference object's constructor arguments (:meth:`inference_init`), so
  ``articulate.inference`` rebuilds the trained model from the file alone (``weights_only=True``,
  core classes only) and refuses a checkpoint of another direction before building anything.
* Hyperparameters (:meth:`save_config`, on Lightning's public ``save_hyperparameters`` and
  ``remove_ignored_hparams``): under LightningCLI they are the parsed config (networks as
  class_path/init_args), which rebuilds the model; built in Python the constructor gets live networks
  and optimizer callables, which are dropped (their weights are in the state dict), so every
  checkpoint stays loadable with ``weights_only=True``.
* :meth:`check_finite`: a NaN or infinite loss stops the fit with one line (step and loss name)
  before the optimizer steps, so no checkpoint ever holds diverged weights. Under DDP every rank
  takes the same decision (one all-reduce), so no rank is left waiting in a collective.
* One way to add a loss (:mod:`articulate.losses`): a module declares the terms it computes itself
  (``builtin_terms``), takes extra :class:`~articulate.losses.LossTerms` components (``losses``) and the
  weights keyed by term name (``lambdas``); :meth:`objective` checks, logs every term and sums them.
* One way to build an optimizer: every optimizer and the LR scheduler are LightningCLI callables from the
  config; :meth:`configure_optimizers` calls them on the parameter groups a module names
  (:meth:`optimizer_groups`); the scheduler steps once per optimizer step.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from articulate.checkpoints import META_KEY
from articulate.errors import ArticulateError
from articulate.losses import LossTerms, check_lambdas, collect_terms, weighted_sum


class NonFiniteLossError(ArticulateError):
    """Training produced a NaN or infinite loss; the fit stops before the optimizer applies it."""


def _plain(value: Any) -> bool:
    """Values a ``weights_only`` load accepts and YAML can show."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


class ArticulateModule(LightningModule):
    """Base class of the project's LightningModules (see the module docstring)."""

    direction: ClassVar[str] = ""
    inference_class: ClassVar[str] = ""  # class path under articulate.inference
    builtin_terms: ClassVar[tuple[str, ...]] = ()  # the loss terms the module computes itself (their logged names)
    # per-recording test means for the reproduction's paired tests ({"recording": [ids], <measure>: [values]}),
    # for modules that keep them (the wav2uti modules); read by articulate.experiments.runner
    test_per_recording: dict[str, list] | None = None

    # -- losses (articulate.losses) -------------------------------------------------------
    def init_losses(self, lambdas: Mapping[str, float] | None, losses: Sequence[LossTerms] | None = None) -> None:
        """Keep the weights (checked against the terms the module and its components can give; None: each of the
        module's own terms at weight 1, the configs say theirs) and the components."""
        self.losses = nn.ModuleList(losses or [])
        known = [*self.builtin_terms, *(name for c in self.losses for name in c.names)]
        lambdas = dict.fromkeys(self.builtin_terms, 1.0) if lambdas is None else lambdas
        self.lambdas: dict[str, float] = check_lambdas(lambdas, known, type(self).__name__)

    def add_terms(self, terms: dict[str, torch.Tensor], context: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``terms`` (the module's own) with those of the ``losses`` components on ``context`` added."""
        collect_terms(self.losses, context, terms)
        return terms

    def objective(self, terms: Mapping[str, torch.Tensor], stage: str, batch_size: int,
                  lambdas: Mapping[str, float] | None = None, prog_bar: Iterable[str] = ()) -> torch.Tensor:
        """Log every term as ``<stage>/<name>`` and the weighted sum as ``<stage>/loss``; return the sum.
        In training a NaN or infinite term stops the fit first (:meth:`check_finite`)."""
        total = weighted_sum(terms, self.lambdas if lambdas is None else lambdas)
        if stage == "train":
            self.check_finite(**terms)
        sync, shown = stage != "train", set(prog_bar)
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value.detach(), batch_size=batch_size, sync_dist=sync, prog_bar=name in shown)
        self.log(f"{stage}/loss", total.detach(), batch_size=batch_size, sync_dist=sync, prog_bar="loss" in shown)
        return total

    # -- optimizers -----------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, tuple[Iterable[nn.Parameter], OptimizerCallable]]:
        """Name -> (parameters, optimizer callable from the config), in the order of ``self.optimizers()``."""
        raise NotImplementedError

    lr_scheduler: LRSchedulerCallable | None = None  # set from the constructor argument of the same name

    def configure_optimizers(self):
        opts = [factory(params) for params, factory in self.optimizer_groups().values()]
        if self.lr_scheduler is None:
            return opts
        return opts, [{"scheduler": self.lr_scheduler(opt), "interval": "step"} for opt in opts]

    def save_config(self) -> None:
        """``save_hyperparameters`` of the caller's constructor arguments, keeping only plain values."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.save_hyperparameters(frame=inspect.currentframe().f_back)
        for key, value in list(self.hparams.items()):  # settings grouped in a dataclass: as their YAML form
            if is_dataclass(value) and not isinstance(value, type):
                self.hparams[key] = asdict(value)
        self.remove_ignored_hparams([k for k, v in self.hparams.items() if not _plain(v)])

    # -- inference ------------------------------------------------------------------------
    def inference_init(self) -> dict[str, Any]:
        """Constructor arguments of the inference object: networks by their live modules, settings by value."""
        raise NotImplementedError

    def to_inference(self):
        """The inference object over this module's live networks (shared, not copied)."""
        from articulate.components import import_class

        return import_class(self.inference_class, prefixes=("",))(**self.inference_init())  # its own class: trusted

    def inference_spec(self) -> dict[str, Any] | None:
        """The YAML form of :meth:`inference_init` for the checkpoint, or None without a CLI config."""
        out = {}
        for name, value in self.inference_init().items():
            if isinstance(value, nn.Module) or getattr(value, "component", False):
                spec = self.hparams.get(name)
                recorded = getattr(value, "init_args", None)  # a network that records its own arguments
                if not (isinstance(spec, dict) and "class_path" in spec) and isinstance(recorded, dict) and _plain(recorded):
                    spec = {"class_path": f"{type(value).__module__}.{type(value).__qualname__}", "init_args": recorded}
                if isinstance(spec, dict) and "class_path" in spec:
                    out[name] = spec
                elif spec is None and not isinstance(value, nn.Module):
                    out[name] = None  # an unconfigured sampler: the inference object's default is the module's
                else:
                    return None  # built in Python: the networks' configuration is unknown
            elif _plain(value):
                out[name] = value
            elif hasattr(value, "to_dict"):
                out[name] = value.to_dict()
            else:
                raise TypeError(f"{type(self).__name__}.inference_init()[{name!r}] is not a network or plain value")
        return out

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Direction-specific metadata for the tools (plain values and tensors only)."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        cls = type(self)
        checkpoint[META_KEY] = {
            "direction": self.direction,
            "module": f"{cls.__module__}.{cls.__qualname__}",
            "inference": self.inference_class,
            "init": self.inference_spec(),
            **self.checkpoint_metadata(),
        }
        hp = checkpoint.get("hyper_parameters")
        if isinstance(hp, dict):
            checkpoint["hyper_parameters"] = {k: v for k, v in hp.items() if _plain(v)}

    # -- faults ---------------------------------------------------------------------------
    def check_finite(self, **losses: torch.Tensor) -> None:
        """Raise :class:`NonFiniteLossError` naming the step and the first non-finite loss."""
        values = {k: v.detach() for k, v in losses.items() if isinstance(v, torch.Tensor)}
        if not values:
            return
        flags = torch.stack([torch.isfinite(v).all() for v in values.values()])
        ok = bool(flags.all())
        if self._trainer is not None and self.trainer.world_size > 1:
            ok = bool(self.trainer.strategy.reduce_boolean_decision(ok, all=True))
        if ok:
            return
        bad = [k for k, v in values.items() if not bool(torch.isfinite(v).all())]
        name = bad[0] if bad else next(iter(values))
        value = float(values[name].float().mean()) if bad else math.nan
        where = f"step {self.global_step}" if self._trainer is not None else "training"
        raise NonFiniteLossError(
            f"{where}: loss {name} is {value} ({'on another rank' if not bad else 'non-finite'}); training stopped before "
            "the optimizer step, nothing was saved from it. Lower the learning rate or check the input data."
        )
