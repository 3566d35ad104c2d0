"""The phantom contour tracker that wav2uti's test passes score tongue surfaces with, trained once and cached.

``articulate train wav2uti`` on the phantom and ``articulate reproduce wav2uti`` need a uti2contour tracker of the
phantom's 64-px fan images (``configs/uti2contour/phantom64.yaml``: a phantom cohort of other speakers than any
wav2uti cohort's). It is trained the first time it is needed (a few CPU minutes in the QUICK preset) and kept
under ``cache_dir()/trackers/`` keyed by everything that determines it (the config files' contents, the step
count, the seed): the same tracker for every run, without training it again.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import torch

from articulate.experiments.runner import RunSpec, run_one
from articulate.paths import cache_dir
from articulate.utils.atomic import atomic_path

__all__ = ["cached_tracker", "tracker_key"]

VERSION = 1  # bump when the tracker's training changes in a way its configs do not show


def tracker_key(spec: RunSpec, root: Path) -> str:
    h = hashlib.sha256()
    for cfg in spec.configs:
        h.update(cfg.encode())
        h.update((root / cfg).read_bytes())
    h.update(repr((spec.overrides, spec.seed, spec.fold, VERSION)).encode())
    return h.hexdigest()[:12]


def cached_tracker(spec: RunSpec, root: Path, quiet: bool = False) -> Path:
    """The checkpoint of ``spec`` (a uti2contour run), trained now unless the cache has it (weights only)."""
    from articulate.phantom.cohort import _lock

    folder = cache_dir() / "trackers"
    dest = folder / f"{spec.model.split(' (')[0].lower().replace(' ', '-')}-{tracker_key(spec, root)}.ckpt"
    if dest.is_file():
        return dest
    with _lock(folder / f".{dest.name}.lock"):  # concurrent runs wait for one trainer
        if dest.is_file():
            return dest
        if not quiet:
            print(f"[articulate] training the contour tracker once ({spec.model}); cached as {dest}", flush=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tracker-", dir=folder))
        try:
            record = run_one(spec, scratch, logger="csv")
            ckpt = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)
            keep = {k: ckpt[k] for k in ("state_dict", "hyper_parameters", "articulate", "pytorch-lightning_version")
                    if k in ckpt}  # no optimizer state: a tool, not a run to resume
            with atomic_path(dest) as tmp:
                torch.save(keep, tmp)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return dest
