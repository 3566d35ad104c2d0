"""The one reader of checkpoint files a user names: safe, checked, one-line refusals.

Every checkpoint load in the project goes through :func:`read_checkpoint`, which uses
``torch.load(weights_only=True)``: the unpickler then only rebuilds tensors and plain containers,
so a file whose pickle calls ``os.system`` (or any other global) is refused before it can run.
On top of that, :class:`Checkpoint` checks what a tool needs before it builds anything: a Lightning
checkpoint, of a known direction, with finite weights.

What our LightningModules store for the tools (``checkpoint["articulate"]``, see
``lightning_modules.base``): ``direction``, ``inference`` (the class path of the inference object that
rebuilds the model from the core alone), ``module`` (the LightningModule's class path) and
direction-specific metadata (mel transform, input grid, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from articulate.errors import InputError

META_KEY = "articulate"


def read_checkpoint(ckpt: str | Path) -> dict[str, Any]:
    """The checkpoint dict (tensors on CPU); a missing, unreadable, unsafe or non-Lightning file is an ``InputError``."""
    import pickle
    import re
    import warnings

    import torch

    ckpt = Path(ckpt)
    if not ckpt.exists():
        raise InputError(ckpt, "checkpoint not found")
    if not ckpt.is_file():
        raise InputError(ckpt, "not a file (a checkpoint is a .ckpt file)")
    if ckpt.stat().st_size == 0:
        raise InputError(ckpt, "empty file (0 bytes): not a checkpoint")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files it then refuses: the refusal is the message.
            warnings.simplefilter("ignore")
            raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses every global it does not know: the file wants to run code (os.system...)
        # or holds pickled objects (modules) that only a trusted loader may rebuild.
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:
            raise InputError(ckpt, f"refused: the file asks to run or rebuild {found.group(1)} (a safe load allows "
                                   "tensors and plain data only; nothing was executed)") from None
        raise InputError(ckpt, "not a readable PyTorch checkpoint (damaged, truncated or another kind of file)") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input problem
        if "central directory" in str(err) or "zip archive" in str(err):
            raise InputError(ckpt, "not a readable PyTorch checkpoint: its zip archive is incomplete or damaged "
                                   "(truncated by an interrupted copy or save?)") from None
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InputError(ckpt, f"not a readable PyTorch checkpoint ({type(err).__name__}: {msg[:200]})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise InputError(ckpt, "not a Lightning checkpoint (no state_dict)")
    return raw


def registered_direction(name: str | None):
    """The registry's record of direction ``name``, or None (no name, or one this installation lacks)."""
    from articulate.directions import directions

    return next((d for d in directions() if d.name == name), None) if name else None


def non_finite(state_dict: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity."""
    import torch

    return [k for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


@dataclass
class Checkpoint:
    """A checked checkpoint: what it is (direction, classes) and its raw contents."""

    path: Path
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def read(cls, path: str | Path, direction: str | None = None, check_weights: bool = True) -> Checkpoint:
        """Read and check; ``direction`` refuses a checkpoint of another direction with one line."""
        ck = cls(Path(path), read_checkpoint(path))
        if direction is not None:
            ck.expect_direction(direction)
        if check_weights:
            ck.check_finite()
        return ck

    def check_finite(self) -> None:
        """Refuse weights holding NaN or infinity (a diverged training) with one line."""
        bad = non_finite(self.state_dict)
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise InputError(self.path, f"weights hold NaN or infinite values ({', '.join(bad[:3])}{more}): "
                                        "the training that wrote it diverged")

    @property
    def state_dict(self) -> dict[str, Any]:
        return self.raw["state_dict"]

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.raw.get(META_KEY)
        return meta if isinstance(meta, dict) else {}

    @property
    def hparams(self) -> dict[str, Any]:
        hp = self.raw.get("hyper_parameters")
        return hp if isinstance(hp, dict) else {}

    @property
    def module_class(self) -> str | None:
        """The LightningModule class path the checkpoint was written by."""
        return self.meta.get("module") or self.hparams.get("_class_path")

    @property
    def direction(self) -> str | None:
        """From the metadata; older checkpoints: from the registry's LightningModule class paths."""
        if self.meta.get("direction"):
            return str(self.meta["direction"])
        from articulate.directions import direction_of_module

        cls = self.module_class
        return direction_of_module(cls) if cls else None

    def expect_direction(self, direction: str) -> None:
        found = self.direction
        if found == direction:
            return
        what, hint = self.describe_direction(), ""
        record = registered_direction(found)
        if record is not None and record.tools:
            hint = f" (use `articulate {next(iter(record.tools))}`)"
        raise InputError(self.path, f"{what}; this needs a {direction} one{hint}")

    def describe_direction(self) -> str:
        """``a wav2uti checkpoint`` / ``a checkpoint of unknown direction ...`` for messages."""
        found = self.direction
        if not found:
            return "a checkpoint of unknown direction (not written by `articulate fit`)"
        if registered_direction(found) is None:
            return f"a checkpoint of the direction {found!r}, which this installation does not register"
        return f"a {found} checkpoint"

    def component(self, name: str) -> dict[str, Any]:
        """The YAML form (class_path + init_args) of constructor argument ``name``, as saved by LightningCLI."""
        spec = self.hparams.get(name)
        if not (isinstance(spec, dict) and "class_path" in spec):
            raise InputError(self.path, f"checkpoint has no configuration of its {name!r} (train it with `articulate fit`)")
        return spec

    def sub_state(self, prefix: str) -> dict[str, Any]:
        """The state dict entries under ``prefix.`` with the prefix removed."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.state_dict.items() if k.startswith(p)}

