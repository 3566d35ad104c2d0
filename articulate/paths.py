"""Where generated and derived data is cached, and where the packaged configs are."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from articulate.errors import InputError

# The project's configs: beside the package in a checkout or an editable install, under the environment's
# data folder (share/articulate/configs, pyproject's data-files) in a wheel install.
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """``$ARTICULATE_CACHE`` or ``~/.cache/articulate`` (phantom cohorts, encoder feature caches), created if
    needed; a place that cannot be a writable folder is one InputError line naming it and the variable."""
    root = os.environ.get("ARTICULATE_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "articulate"
    where = "ARTICULATE_CACHE" if root else "the default cache (set ARTICULATE_CACHE to use another folder)"
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(path, f"cannot use this cache folder ({where}): {parent} is a file")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(path, f"cannot create this cache folder ({where}): {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(path, f"cache folder is not writable ({where})")
    return path


def configs_dir() -> Path:
    """The folder holding the project's configs (``mri2audio.yaml``, ``wav2uti/quick.yaml`` ...).

    ``$ARTICULATE_CONFIGS`` when set; else the ``configs`` folder of the checkout this package is in (also
    an editable install); else the copy a wheel installs under the environment's data folder."""
    env = os.environ.get("ARTICULATE_CONFIGS")
    candidates = [Path(env)] if env else []
    candidates += [_PACKAGE_ROOT / "configs", Path(sysconfig.get_path("data")) / "share" / "articulate" / "configs"]
    for cand in candidates:
        if cand.is_dir():
            return cand
    raise InputError(candidates[0], "the project's configs are not installed (set ARTICULATE_CONFIGS to the "
                                    "configs folder of a checkout)")


def resolve_config(value: str | os.PathLike) -> str:
    """A ``--config`` argument as a path that exists: as given when it does (relative to the working
    folder), else a project config named relative to the project (``configs/wav2uti.yaml``), wherever the
    command runs. Anything else is returned unchanged (the caller reports it)."""
    text = os.fspath(value)
    if Path(text).exists() or Path(text).is_absolute():
        return text
    rel = Path(text)
    if rel.parts and rel.parts[0] == "configs":
        try:
            packaged = configs_dir().joinpath(*rel.parts[1:])
        except InputError:
            return text
        if packaged.is_file():
            return str(packaged)
    return text
