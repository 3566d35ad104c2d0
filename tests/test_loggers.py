from __future__ import annotations

import pytest

from articulate import loggers


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)


def test_not_logged_in_without_key_or_netrc(no_credentials):
    assert loggers.wandb_logged_in() is False


def test_netrc_entry_counts_as_logged_in(no_credentials, tmp_path):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    netrc.chmod(0o600)
    assert loggers.wandb_logged_in() is True


@pytest.mark.parametrize(
    "mode, key, expected_offline",
    [("", None, True), ("", "k" * 40, False), ("offline", "k" * 40, True), ("online", None, False)],
)
def test_offline_follows_login_and_wandb_mode(no_credentials, monkeypatch, tmp_path, mode, key, expected_offline):
    monkeypatch.setenv("WANDB_MODE", mode)
    if key:
        monkeypatch.setenv("WANDB_API_KEY", key)
    logger = loggers.ArticulateWandbLogger(save_dir=str(tmp_path / "logs"))
    assert logger._offline is expected_offline
