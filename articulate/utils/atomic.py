"""Outputs appear whole or not at all, never over an input, and a full disk is one line.

* :func:`atomic_path` / :func:`atomic_outputs`: each output is written to a temporary file beside it and
  renamed into place when the whole block succeeded; several outputs (a WAV and its PNGs) are renamed
  together, in the order given, after the last one was written.
* :func:`atomic_folder`: a multi-file output (a phantom cohort) is built in a temporary folder beside
  its place and renamed into place when complete (the caller writes its manifest last).
* A write that fails because the disk is full, over quota or read-only (``ENOSPC``, ``EDQUOT``,
  ``EROFS``, ``EFBIG``; libraries that lose the errno are recognised by their message, or by a folder
  left with no free space) becomes one :class:`InputError` line naming the output, and the temporary is
  removed.
* Temporaries are named ``.<name>.~tmp-<host>-<pid>-<random><suffix>``: a later run removes those whose
  writer is provably gone (:func:`sweep_stale`: same host and that process is dead, or the process now
  holding that id started after the temporary was last written; other hosts: untouched for
  ``STALE_AFTER_S``), and never a running writer's.
* :func:`check_not_inputs`: an output that resolves (after symlinks, or as a hard link) to one of the
  command's inputs is refused before anything is done.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from articulate.errors import InputError

__all__ = ["ensure_dir", "check_output", "atomic_path", "atomic_outputs", "atomic_folder", "scratch_dir",
           "sweep_stale", "is_stale", "temp_name", "disk_problem", "check_not_inputs", "same_path", "STALE_AFTER_S"]

STALE_AFTER_S = 24 * 3600  # a temporary of another host's writer is stale when untouched this long
TEMP_MARK = ".~tmp-"
_TEMP_RE = re.compile(r"^\..*\.~tmp-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[a-z0-9]+")
DISK_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for this file system (or the process's file size limit)",
}
_DISK_TEXT = (("No space left", errno.ENOSPC), ("Disk quota", errno.EDQUOT), ("Read-only file system", errno.EROFS),
              ("File too large", errno.EFBIG))
_FULL_BYTES = 64 * 1024  # a folder with less free space than this after a failed write: the disk is full
_swept: set[str] = set()


# --------------------------------------------------------------------------------------------- temporaries


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"


def temp_name(base: str, suffix: str = "") -> str:
    """A temporary's file name recording this host and process (:func:`is_stale` reads them back)."""
    return f".{base}{TEMP_MARK}{_host()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds; Linux), None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def is_stale(path: str | Path, now: float | None = None) -> bool:
    """Whether ``path`` is one of our temporaries whose writer is provably gone."""
    path = Path(path)
    m = _TEMP_RE.match(path.name)
    if not m:
        return False
    try:
        mtime = path.lstat().st_mtime
    except OSError:
        return False
    if m.group("host") != _host():
        return (now or time.time()) - mtime > STALE_AFTER_S
    pid = int(m.group("pid"))
    if pid == os.getpid():
        return False
    if not _alive(pid):
        return True
    started = _process_start(pid)
    return started is not None and started > mtime + 2.0  # the id was reused by a process born after the write


def sweep_stale(folder: str | Path, force: bool = False) -> list[Path]:
    """Remove the stale temporaries (:func:`is_stale`) directly in ``folder``; returns them.

    Each folder is swept once per process unless ``force``."""
    folder = Path(folder)
    key = str(folder.resolve()) if folder.exists() else str(folder)
    if key in _swept and not force:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if TEMP_MARK in e.name]
    except OSError:
        return removed
    for entry in entries:
        p = Path(entry.path)
        if not is_stale(p):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


# --------------------------------------------------------------------------------------------- errors


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _file_size_limit_hit(files: Iterable[Path]) -> bool:
    """Whether one of ``files`` reached the process's file size limit (RLIMIT_FSIZE: writes past it fail)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return False
    if limit == resource.RLIM_INFINITY:
        return False
    for f in files:
        try:
            if f.stat().st_size >= limit:
                return True
        except OSError:
            continue
    return False


def disk_error_line(err: OSError) -> str | None:
    """``<file>: cannot write: <reason>`` for an OSError of a full / over-quota / read-only file system (or a file
    too large), None for any other: what a command prints for a write outside the atomic helpers."""
    if err.errno not in DISK_ERRNOS:
        return None
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}cannot write: {DISK_ERRNOS[err.errno]}"


def disk_problem(err: BaseException, folder: str | Path | None = None, written: Iterable[Path] = ()) -> str | None:
    """``cannot write: <reason>`` when ``err`` (or an error it wraps) is a full / over-quota / read-only file
    system (or a file size limit reached by one of the ``written`` files), None otherwise."""
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            return f"cannot write: {DISK_ERRNOS[e.errno]}"
    for e in _chain(err):
        text = str(e)
        for needle, code in _DISK_TEXT:
            if needle.lower() in text.lower():
                return f"cannot write: {DISK_ERRNOS[code]}"
    if folder is not None and isinstance(err, (OSError, RuntimeError, ValueError)):
        free = _free_bytes(Path(folder))
        if free is not None and free < _FULL_BYTES:  # a writer that lost the errno (libsndfile, numpy tofile)
            return f"cannot write: {DISK_ERRNOS[errno.ENOSPC]}"
    if isinstance(err, (OSError, RuntimeError, ValueError)) and _file_size_limit_hit(written):
        return f"cannot write: {DISK_ERRNOS[errno.EFBIG]}"
    return None


# --------------------------------------------------------------------------------------------- folders


def _missing_ancestors(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first (what ensure_dir would create)."""
    out = []
    for p in (folder, *folder.parents):
        if p.exists():
            break
        out.append(p)
    return out


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders a failed write created, deepest first, while they are empty."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            break


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


# --------------------------------------------------------------------------------------------- outputs vs inputs


def _identity(p: Path) -> tuple[Path | None, tuple[int, int] | None]:
    try:
        resolved = p.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        resolved = None
    try:
        st = os.stat(p)
        inode = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        inode = None
    return resolved, inode


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (after symlinks; hard links too)."""
    (ra, ia), (rb, ib) = _identity(Path(a)), _identity(Path(b))
    return (ra is not None and ra == rb) or (ia is not None and ia == ib)


def check_not_inputs(outputs: Iterable | Mapping, inputs: Iterable | Mapping, folders: bool = False,
                     into_folders: bool = False) -> None:
    """Refuse an output that is one of the inputs (one line naming both).

    ``outputs`` / ``inputs``: paths, or ``{label: path}`` (labels such as ``--input`` name them in the message);
    None entries are skipped. With ``folders`` the outputs are folders replaced as a whole, so an input inside
    one of them is refused too. With ``into_folders`` an output that is an existing folder (files are written
    into it, e.g. ``--mri DIR --out DIR``) may be an input folder: the command checks each file it writes."""
    def items(x):
        if isinstance(x, Mapping):
            return [(k, Path(v)) for k, v in x.items() if v is not None]
        return [(None, Path(v)) for v in x if v is not None]

    by_path: dict[Path, str] = {}
    by_inode: dict[tuple[int, int], str] = {}
    for label, inp in items(inputs):
        what = f"{label} {inp}" if label else str(inp)
        resolved, inode = _identity(inp)
        if resolved is not None:
            by_path.setdefault(resolved, what)
        if inode is not None:
            by_inode.setdefault(inode, what)
    for _, out in items(outputs):
        if into_folders and out.is_dir():
            continue
        resolved, inode = _identity(out)
        what = by_path.get(resolved) if resolved is not None else None
        what = what or (by_inode.get(inode) if inode is not None else None)
        if what:
            raise InputError(out, f"is also an input of this command ({what}): refusing to overwrite it; "
                                  "write the output elsewhere")
        if folders and resolved is not None:
            for inp, what in by_path.items():
                if inp.is_relative_to(resolved):
                    raise InputError(out, f"holds an input of this command ({what}): refusing to replace it; "
                                          "write the output elsewhere")


# --------------------------------------------------------------------------------------------- atomic writes


class OutputSet:
    """Temporary files for several outputs, renamed into place together (:func:`atomic_outputs`)."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Path, Path]] = []
        self._created: list[Path] = []  # folders made for the outputs: removed again if the write fails

    def temp(self, path: str | Path) -> Path:
        """A new temporary beside ``path`` (same suffixes: writers pick the format from them)."""
        path = Path(path)
        if path.is_dir():
            raise InputError(path, "is a folder; give a file name to write")
        self._created = _missing_ancestors(path.parent) + self._created
        ensure_dir(path.parent)
        sweep_stale(path.parent)
        tmp = path.parent / temp_name(path.name.split(".")[0], "".join(path.suffixes))
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # 0o666 & ~umask, as open() gives
        except OSError as err:
            raise InputError(path, disk_problem(err) or f"cannot write here ({err.strerror or err})") from None
        self._pairs.append((tmp, path))
        return tmp

    def final(self, err: BaseException) -> Path | None:
        """The output a failed write was for (the one named by the error, else the last one started)."""
        names = {str(e.filename) for e in _chain(err) if isinstance(e, OSError) and e.filename}
        names |= {str(e.path) for e in _chain(err) if isinstance(e, InputError) and e.path is not None}
        for tmp, path in self._pairs:
            if str(tmp) in names or str(path) in names:
                return path
        return self._pairs[-1][1] if self._pairs else None

    def temps(self) -> list[Path]:
        return [tmp for tmp, _ in self._pairs]

    def commit(self) -> None:
        for tmp, path in self._pairs:
            os.replace(tmp, path)

    def abort(self) -> None:
        for tmp, _ in self._pairs:
            with contextlib.suppress(OSError):
                tmp.unlink()
        _remove_empty(sorted(set(self._created), key=lambda p: len(p.parts), reverse=True))


@contextlib.contextmanager
def atomic_outputs() -> Iterator[OutputSet]:
    """``with atomic_outputs() as out: write(out.temp(a)); write(out.temp(b))``: a and b appear together, in the
    order their temporaries were made, only when the block succeeds; nothing is left when it fails. A full
    disk is one InputError naming the output."""
    outputs = OutputSet()
    try:
        yield outputs
        outputs.commit()
    except BaseException as err:
        target = outputs.final(err)
        problem = None
        if isinstance(err, InputError) and err.problem.startswith("cannot write:"):
            # a nested writer's full disk (a temporary, a scratch file): name the output it was for
            problem = err.problem if target is not None and err.path != target else None
        elif isinstance(err, Exception) and not isinstance(err, InputError):
            # judged before the temporaries are removed: removing them frees the space a full disk lacked
            problem = disk_problem(err, target.parent if target is not None else None, outputs.temps())
        outputs.abort()
        if problem:
            raise InputError(target, problem) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps the destination's suffix(es) because some writers (soundfile,
    nibabel, ffmpeg) choose the format from the extension.
    """
    with atomic_outputs() as outputs:
        yield outputs.temp(path)


@contextlib.contextmanager
def scratch_dir(near: str | Path) -> Iterator[Path]:
    """A temporary working folder inside ``near`` (named so that a killed run's is swept), removed after."""
    near = ensure_dir(near)
    sweep_stale(near)
    tmp = near / temp_name("scratch")
    try:
        tmp.mkdir()
    except OSError as err:
        raise InputError(near, disk_problem(err) or f"cannot write here ({err.strerror or err})") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path, replaceable=None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it is renamed to ``path``.

    An existing empty folder at ``path`` is replaced; a non-empty one only when ``replaceable(path)`` says so
    (e.g. an earlier cohort), else it is refused before any work. On failure or interruption the temporary
    folder is removed; a killed run's is swept by the next run in the same place."""
    given, path = Path(path), Path(os.path.abspath(path))  # "." has a parent and a name once absolute
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise InputError(given, f"cannot create this folder: {p} is a file")
            break
    created = _missing_ancestors(path.parent)
    try:
        parent = ensure_dir(path.parent)
    except InputError as err:
        raise InputError(given, err.problem) from None
    sweep_stale(parent, force=True)
    if path.is_dir() and any(path.iterdir()) and not (replaceable and replaceable(path)):
        raise InputError(given, "folder is not empty (and not an earlier output of this command): give a new or "
                                "empty folder")
    tmp = parent / temp_name(path.name)
    try:
        tmp.mkdir()
    except OSError as err:
        raise InputError(given, disk_problem(err) or f"cannot create this folder ({err.strerror or err})") from None
    try:
        yield tmp
        if path.exists():
            old = parent / temp_name(path.name + ".old")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException as err:
        problem = (disk_problem(err, parent, (p for p in tmp.rglob("*") if p.is_file()))
                   if isinstance(err, Exception) and not isinstance(err, InputError) else None)
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        if isinstance(err, InputError) and err.path is not None and tmp in Path(os.path.abspath(err.path)).parents:
            # a file of the temporary folder: name it where it would have been
            raise InputError(given / Path(os.path.abspath(err.path)).relative_to(tmp), err.problem) from None
        if problem:
            raise InputError(given, problem) from None
        raise
