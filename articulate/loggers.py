"""W&B as the default dashboard, offline unless the user is logged in (sync later with `wandb sync`)."""

from __future__ import annotations

import netrc
import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger


def wandb_logged_in() -> bool:
    """True when W&B credentials exist (env var or ~/.netrc), without touching the network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


class ArticulateWandbLogger(WandbLogger):
    """``WandbLogger`` whose ``offline`` defaults to "not logged in".

    ``WANDB_MODE`` (online/offline/disabled) still wins, as in every wandb program (``articulate fit``
    replaces this logger by a CSV logger when it is ``disabled``). ``save_dir`` None: ``articulate fit``
    sets it to ``--trainer.default_root_dir`` so that everything a run writes lives there ("logs" outside it).
    """

    def __init__(self, project: str = "articulate", save_dir: str | None = None, offline: bool | None = None,
                 **kwargs: Any):
        save_dir = "logs" if save_dir is None else save_dir
        mode = os.environ.get("WANDB_MODE", "").lower()
        if offline is None:
            offline = mode in ("offline", "dryrun") or (mode != "online" and not wandb_logged_in())
        os.makedirs(save_dir, exist_ok=True)
        super().__init__(project=project, save_dir=save_dir, offline=offline, **kwargs)
