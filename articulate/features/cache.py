"""Feature cache: frozen encoder outputs stored as ``.npy`` files keyed by encoder and content.

Layout: ``<root>/<encoder-slug>-<hash12>/<content-hash>.npy`` with ``<root>`` defaulting to
``articulate.paths.cache_dir()/features`` (or a folder beside the data). ``<hash12>`` hashes the
encoder's full ``cache_key()`` (class, configuration, model id and a fingerprint of its weights),
written in ``key.txt`` beside the files so a person can tell what a folder holds. The content hash
is computed from what the encoder actually sees (the decoded, trimmed waveform and its sample rate
and frame count; or the transcript text), so an edited recording or a different trim never hits a
stale entry.

DDP safety: every file is written with ``atomic_path`` (unique temp file + rename), so ranks that
compute the same entry concurrently cannot corrupt it; the LightningModule lets rank 0 fill the
cache first and the other ranks read after a barrier. Entries are stored as float16 (half the
disk, exact enough for conditioning features) and read back memory-mapped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from articulate.utils.atomic import atomic_path

__all__ = ["FeatureCache", "array_content_key", "file_content_key", "text_content_key"]


def array_content_key(array: np.ndarray, *extra) -> str:
    """sha256 of an array's bytes, dtype and shape plus any extra parameters (e.g. sr, n_frames)."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256()
    h.update(str((a.dtype.str, a.shape, extra)).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:40]


def file_content_key(path: str | Path, *extra) -> str:
    """sha256 of a file's bytes plus extra parameters."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(repr(extra).encode())
    return h.hexdigest()[:40]


def text_content_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


class FeatureCache:
    """``get``/``put``/``get_or_compute`` of arrays by ``(encoder_key, content_key)``.

    ``hits`` and ``misses`` count lookups (tests and logs use them).
    """

    def __init__(self, root: str | Path | None = None, dtype: str = "float16"):
        if root is None:
            from articulate.paths import cache_dir

            root = cache_dir() / "features"
        self.root = Path(root)
        self.dtype = np.dtype(dtype)
        self.hits = 0
        self.misses = 0

    def folder(self, encoder_key: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", encoder_key.split(":", 1)[0]).strip("-")[:40] or "encoder"
        folder = self.root / f"{slug}-{hashlib.sha256(encoder_key.encode()).hexdigest()[:12]}"
        if not (folder / "key.txt").exists():
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(folder / "key.txt") as tmp:
                tmp.write_text(encoder_key + "\n")
        return folder

    def path(self, encoder_key: str, content_key: str) -> Path:
        return self.folder(encoder_key) / f"{content_key}.npy"

    def get(self, encoder_key: str, content_key: str) -> np.ndarray | None:
        p = self.path(encoder_key, content_key)
        if not p.exists():
            return None
        try:
            return np.load(p, mmap_mode="r")
        except (ValueError, OSError):  # unreadable entry (e.g. disk full at write time): recompute
            return None

    def put(self, encoder_key: str, content_key: str, array: np.ndarray) -> np.ndarray:
        p = self.path(encoder_key, content_key)
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(array, dtype=self.dtype))
        return np.load(p, mmap_mode="r")

    def get_or_compute(self, encoder_key: str, content_key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        found = self.get(encoder_key, content_key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        return self.put(encoder_key, content_key, compute())
