"""Where pretrained weights files come from: the user's path, the caches, else a checked download.

:func:`fetch_weights` is the one entry point (used by :mod:`articulate.metrics.backbones`):

1. ``weights_path`` given by the user (a file, or a folder containing the expected file name);
2. the torch hub cache ``torch.hub.get_dir()/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``, default
   ``~/.cache/torch/hub/checkpoints``), where torchvision and pytorch-fid keep their downloads;
3. ``articulate.paths.cache_dir()/pretrained/``;
4. a download into the torch hub cache with torch's own ``torch.hub.download_url_to_file``, whose
   hash is checked before the file takes its name: the SHA-256 prefix (torch hub's file-name
   convention ``name-<sha256[:8]>.ext``) or the git blob SHA-1 of a file served from a git
   repository. A mismatching file is deleted and refused.

``ARTICULATE_OFFLINE=1`` turns step 4 off (the test suite sets it). When nothing is found and
nothing can be downloaded (offline, DNS, HTTP error, timeout, a wrong hash), the error is
:class:`articulate.errors.MissingPretrainedError` naming the file, its address and where to put it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from articulate.errors import MissingPretrainedError
from articulate.paths import cache_dir

__all__ = ["WeightsFile", "find_weights", "fetch_weights", "download_weights", "downloads_allowed", "git_blob_sha1",
           "hub_checkpoints_dir", "search_dirs", "DOWNLOAD_TIMEOUT_S"]


@dataclass(frozen=True)
class WeightsFile:
    """A pretrained weights file: its name in the caches, where it is downloaded from, its hash.

    ``sha256_prefix``: the leading hex digits of its SHA-256 (torch hub's file-name convention);
    ``git_blob_sha1``: the blob id of the file in the git repository ``url`` serves it from.
    """

    name: str
    url: str
    sha256_prefix: str | None = None
    git_blob_sha1: str | None = None


DOWNLOAD_TIMEOUT_S = 60.0


def hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs() -> list[Path]:
    return [hub_checkpoints_dir(), cache_dir() / "pretrained"]


def downloads_allowed() -> bool:
    return os.environ.get("ARTICULATE_OFFLINE", "").strip().lower() not in ("1", "true", "yes", "on")


def _names(files: WeightsFile | tuple[WeightsFile, ...] | str | tuple[str, ...]) -> tuple[str, ...]:
    items = files if isinstance(files, tuple) else (files,)
    return tuple(f.name if isinstance(f, WeightsFile) else str(f) for f in items)


def find_weights(filenames, weights_path: str | os.PathLike | None, what: str, source: str) -> Path:
    """Path of the first existing candidate, or MissingPretrainedError saying exactly what to do."""
    names = _names(filenames)
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if p.is_file():
            return p
        if p.is_dir():
            for n in names:
                if (p / n).is_file():
                    return p / n
        raise MissingPretrainedError(
            f"{what}: weights_path {p} is not a file and contains none of {', '.join(names)}")
    for d in search_dirs():
        for n in names:
            if (d / n).is_file():
                return d / n
    dirs = " or ".join(str(d) for d in search_dirs())
    raise MissingPretrainedError(
        f"{what}: weights file {' or '.join(names)} not found. Download it from {source} and put it in {dirs}, "
        "or pass its path as weights_path")


def git_blob_sha1(path: Path) -> str:
    """The id git gives a file's content: SHA-1 of ``b"blob <size>\\0"`` + the bytes."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torch's download opens its URL without a timeout; a firewalled network would hang forever.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download_weights(spec: WeightsFile, dest_dir: Path | None = None) -> Path:
    """Download ``spec`` into ``dest_dir`` (the torch hub cache) and check its hash; the checked file
    only ever appears under its final name (a refused one is deleted). Raises what the download or
    the check raises (``RuntimeError`` for a wrong hash)."""
    dest_dir = Path(dest_dir) if dest_dir is not None else hub_checkpoints_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / spec.name
    tmp = dest_dir / f".{spec.name}.{os.getpid()}.download"
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            # torch checks the SHA-256 prefix itself and deletes a mismatching download.
            torch.hub.download_url_to_file(spec.url, str(tmp), hash_prefix=spec.sha256_prefix, progress=False)
        if spec.git_blob_sha1 is not None:
            got = git_blob_sha1(tmp)
            if got != spec.git_blob_sha1:
                raise RuntimeError(f'invalid hash value (expected git blob "{spec.git_blob_sha1}", got "{got}")')
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch_weights(files: WeightsFile | tuple[WeightsFile, ...], weights_path: str | os.PathLike | None,
                  what: str) -> Path:
    """A local weights file (see :func:`find_weights`), else the first of ``files`` downloaded and
    checked; offline or on any download error, MissingPretrainedError with the instructions."""
    specs = files if isinstance(files, tuple) else (files,)
    source = " or ".join(f.url for f in specs)
    try:
        return find_weights(specs, weights_path, what, source)
    except MissingPretrainedError as missing:
        if weights_path is not None:
            raise
        if not downloads_allowed():
            raise MissingPretrainedError(f"{missing} (downloads are off: ARTICULATE_OFFLINE is set)") from None
        spec = specs[0]
        try:
            return download_weights(spec)
        except RuntimeError as err:
            if "hash" in str(err):
                raise MissingPretrainedError(
                    f"{what}: the file downloaded from {spec.url} failed its hash check and was refused ({err}). "
                    f"Retry later, or download it yourself and check it") from None
            raise MissingPretrainedError(f"{missing} (download from {spec.url} failed: {err})") from None
        except Exception as err:  # noqa: BLE001 - offline, DNS, HTTP, timeout, disk: all mean "not available"
            raise MissingPretrainedError(f"{missing} (offline? download from {spec.url} failed: "
                                         f"{type(err).__name__}: {err})") from None
