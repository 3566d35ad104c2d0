"""Reading a Lightning checkpoint a user names on the command line, with one-line refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from articulate.errors import InputError


def read_checkpoint(ckpt: str | Path) -> dict[str, Any]:
    """The checkpoint dict (on CPU); a missing, unreadable or non-Lightning file is an ``InputError``."""
    import torch

    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise InputError(ckpt, "checkpoint not found")
    try:
        raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise InputError(ckpt, f"not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(raw, dict) or "state_dict" not in raw:
        raise InputError(ckpt, "not a Lightning checkpoint (no state_dict)")
    return raw
