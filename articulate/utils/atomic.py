"""Write-then-rename so that a failed or interrupted write never leaves a partial output file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from articulate.errors import InputError


def ensure_dir(folder: str | Path) -> Path:
    """Create ``folder`` (and parents) or raise one InputError line: read-only place, or a file in the way."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(folder, f"cannot create this folder: {parent} is a file")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(folder, f"cannot create this folder ({err.strerror or err})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(folder, "folder is not writable")
    return folder


def check_output(path: str | Path) -> Path:
    """Refuse, before any work is done, an output file that :func:`atomic_path` would refuse at the end:
    a folder in its place, a file in the way of its folder, a folder that is not writable. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; give a file name to write")
    folder = path.parent
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(folder, f"cannot create this folder: {parent} is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(folder, "folder is not writable" if parent == folder else f"cannot create this folder: {parent} is not writable")
            break
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps the destination's suffix(es) because some writers (soundfile,
    nibabel, ffmpeg) choose the format from the extension.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; give a file name to write")
    suffix = "".join(path.suffixes) or ""
    try:
        ensure_dir(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem.split('.')[0]}.", suffix=".tmp" + suffix, dir=path.parent)
    except OSError as err:
        raise InputError(path, f"cannot write here ({err.strerror or err})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the output the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
