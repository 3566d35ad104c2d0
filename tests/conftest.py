"""Shared fixtures. Tests run on CPU, offline, with W&B disabled and caches in a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"

# Tests never reach a hub or a W&B server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ARTICULATE_OFFLINE", "1")  # metric feature weights: no download attempts
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real sample recordings beside the checkout; tests using them skip when absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"real samples not found at {SAMPLES} (only present beside the development checkout)")
    return SAMPLES


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny per-iteration tensor ops: on a shared 2-core box OpenMP thread hand-offs cost
    more than the arithmetic (measured 25x slower with 2 threads). Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Phantom cohorts and feature caches go to one session-wide temp folder, not ~/.cache."""
    if "ARTICULATE_CACHE" not in os.environ or os.environ.get("ARTICULATE_TEST_KEEP_CACHE") != "1":
        os.environ["ARTICULATE_CACHE"] = str(tmp_path_factory.mktemp("articulate-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Untrained tiny mri2audio / wav2uti checkpoints, built on first use (tests/badinput_helpers.py)."""
    from badinput_helpers import TinyCheckpoints

    return TinyCheckpoints(tmp_path_factory.mktemp("tiny-checkpoints"))
