"""The base of every inference object and the dispatch from a checkpoint to its inference class."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from torch import nn

from articulate.checkpoints import Checkpoint
from articulate.components import import_class, instantiate
from articulate.errors import InputError

P = TypeVar("P", bound="Predictor")


class Predictor(nn.Module):
    """An inference object: ``nn.Module`` whose children carry the same names as in the LightningModule
    that trained them, so the training checkpoint's state dict loads into it as it is.

    Subclasses set ``direction`` and take their networks and settings as constructor arguments; a
    checkpoint stores those arguments (networks as class_path/init_args) under
    ``checkpoint["articulate"]["init"]`` and the class under ``["inference"]``.
    """

    direction: ClassVar[str] = ""

    @classmethod
    def from_checkpoint(cls: type[P], path: str | Path, device: str | torch.device = "cpu") -> P:
        ck = Checkpoint.read(path, direction=cls.direction or None)
        target = inference_class(ck)
        if not issubclass(target, cls):
            raise InputError(ck.path, f"a {target.__name__} checkpoint, not a {cls.__name__} one")
        return target.from_loaded(ck).to(device).eval()

    @classmethod
    def from_loaded(cls: type[P], ck: Checkpoint) -> P:
        init = ck.meta.get("init")
        if not isinstance(init, dict):
            raise InputError(ck.path, "checkpoint has no model configuration (train it with `articulate fit`; "
                                      "models built in Python must be given their networks again)")
        model = cls(**{k: instantiate(v, ck.path) for k, v in init.items()})
        model.load_weights(ck)
        return model

    def load_weights(self, ck: Checkpoint) -> None:
        """Load the state dict entries of this object's children; a missing or misshapen one is an error."""
        own = self.state_dict()
        state = {k: v for k, v in ck.state_dict.items() if k in own}
        missing = [k for k in own if k not in state and not self._rebuilt_elsewhere(k)]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise InputError(ck.path, f"weights missing for {', '.join(missing[:3])}{more} (checkpoint of another model?)")
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise InputError(ck.path, f"weights do not fit the configured networks ({first[-1].strip()[:200]})") from None

    def _rebuilt_elsewhere(self, key: str) -> bool:
        """State that a checkpoint need not hold (e.g. frozen pretrained encoders, reloaded from their hub id)."""
        return False

    @property
    def device(self) -> torch.device:
        for t in (*self.parameters(), *self.buffers()):
            return t.device
        return torch.device("cpu")


def inference_class(ck: Checkpoint) -> type[Predictor]:
    """The checkpoint's inference class, checked against what its direction registers."""
    from articulate.checkpoints import registered_direction

    direction = ck.direction
    if direction is None:
        raise InputError(ck.path, "not a checkpoint of a known direction (no `articulate` metadata, unknown model class)")
    record = registered_direction(direction)
    if record is None:
        raise InputError(ck.path, ck.describe_direction())
    allowed = record.inference
    name = ck.meta.get("inference") or allowed.get(ck.module_class or "")
    if name not in allowed.values():
        raise InputError(ck.path, f"its inference class {name!r} is not one {direction} registers")
    cls = import_class(name, ck.path)
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise InputError(ck.path, f"{name} is not an inference class")
    return cls


def load_predictor(path: str | Path, direction: str | None = None, device: str | torch.device = "cpu") -> Predictor:
    """The inference object of any registered direction's checkpoint (``direction`` refuses others)."""
    ck = Checkpoint.read(path, direction=direction)
    return inference_class(ck).from_loaded(ck).to(device).eval()
