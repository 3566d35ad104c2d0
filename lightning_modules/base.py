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
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from torch import nn

from articulate.checkpoints import META_KEY
from articulate.errors import ArticulateError


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

    def save_config(self) -> None:
        """``save_hyperparameters`` of the caller's constructor arguments, keeping only plain values."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.save_hyperparameters(frame=inspect.currentframe().f_back)
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
