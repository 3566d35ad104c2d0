"""Every number that enters Articulate is checked here: CLI options, config values, file headers.

One module, so that "finite, in range, consistent" means the same everywhere and a new entry point
gets the same checks by calling the same function:

* :func:`number` parses and checks one value (text or number): finite, whole when asked, in range.
  Failures are an :class:`~articulate.errors.InputError` naming the file (or None for an option) and
  the value: ``--steps must be at least 1, got 0``.
* :func:`sample_rate`, :func:`frame_rate` and :func:`audio_samples` add what "plausible" means for
  recordings: a rate that is valid but unlikely (a WAV claiming 1 Hz, a video at 5,000 fps) is used
  with one warning line (:func:`warn`), an impossible one is refused.
* :func:`check_memory` bounds sizes by the memory this machine has (an allocation that cannot fit is
  refused before it is tried); :func:`device` checks a torch device string and whether it exists
  (``no CUDA device: use --device cpu``).

Warnings are one line on stderr, ``warning: <file>: <problem>``, printed once per process each.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from articulate.errors import InputError

__all__ = ["number", "numbers", "warn", "sample_rate", "frame_rate", "audio_samples", "finite_array",
           "available_memory", "check_memory", "format_bytes", "device", "SAMPLE_RATE_RANGE", "FRAME_RATE_RANGE"]

# Plausible ranges: outside them a value is used with a warning (inside the hard limits) or refused.
SAMPLE_RATE_RANGE = (4000, 384000)  # Hz: telephone speech to the highest studio rates
SAMPLE_RATE_LIMIT = 10_000_000  # Hz: beyond this no audio device exists
FRAME_RATE_RANGE = (1.0, 1000.0)  # fps: slow MRI cine to high-speed ultrasound
FRAME_RATE_LIMIT = 1_000_000.0
FLOAT_AUDIO_LIMIT = 1000.0  # float samples beyond +60 dB full scale are not audio in [-1, 1]

_warned: set[str] = set()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def number(value, name: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, source: str | Path | None = None,
           allow_none: bool = False):
    """``value`` (a number or its text) as an ``int`` (``integer``) or ``float``, checked: finite, whole when
    ``integer``, and within ``[low, high]`` (open ends with ``low_open`` / ``high_open``). Anything else is an
    :class:`InputError` naming ``source`` (a file; None for an option) and ``name``."""
    if value is None:
        if allow_none:
            return None
        raise InputError(source, f"{name} is missing")
    if isinstance(value, bool):
        raise InputError(source, f"{name} must be a number, got {value!r}")
    given = value
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if not re.fullmatch(r"[-+]?\d+", text) else int(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise InputError(source, f"{name} must be {kind}, got {given!r}") from None
    try:
        as_float = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(source, f"{name} must be a number, got {given!r}") from None
    if not math.isfinite(as_float):
        raise InputError(source, f"{name} must be a finite number, got {_fmt(given) if not isinstance(given, str) else given}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise InputError(source, f"{name} must be a whole number, got {_fmt(given)}")
        value = int(value)
    else:
        value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise InputError(source, f"{name} must be {'above' if low_open else 'at least'} {_fmt(low)}, got {_fmt(value)}")
    if high is not None and (value > high or (high_open and value == high)):
        raise InputError(source, f"{name} must be {'below' if high_open else 'at most'} {_fmt(high)}, got {_fmt(value)}")
    return value


def numbers(values: Iterable, name: str, **kwargs) -> list:
    """:func:`number` of every element (e.g. a comma-separated option)."""
    return [number(v, name, **kwargs) for v in values]


def warn(source: str | Path | None, problem: str) -> None:
    """One warning line on stderr for a suspicious but usable input (each distinct line once per process)."""
    line = f"warning: {source}: {problem}" if source is not None else f"warning: {problem}"
    if line in _warned:
        return
    _warned.add(line)
    print(line, file=sys.stderr, flush=True)


def reset_warnings() -> None:
    """Forget which warnings were printed (tests run many commands in one process)."""
    _warned.clear()


# --------------------------------------------------------------------------------------------- recordings


def sample_rate(value, source: str | Path | None, name: str = "sample rate") -> int:
    """An audio sample rate in Hz: a whole number from 1 Hz to 10 MHz; outside 4-384 kHz it is used with a
    warning (a header claiming 1 Hz turns 16 samples into "16 s of audio")."""
    sr = number(value, name, integer=True, low=1, high=SAMPLE_RATE_LIMIT, source=source)
    lo, hi = SAMPLE_RATE_RANGE
    if not lo <= sr <= hi:
        warn(source, f"implausible {name} of {sr} Hz (recordings use {lo:,}-{hi:,} Hz): durations computed from it "
                     "are wrong if the header is")
    return sr


def frame_rate(value, source: str | Path | None, name: str = "frame rate") -> float:
    """A frame rate in fps: finite and positive, at most 1,000,000; outside 1-1000 fps used with a warning."""
    fps = number(value, name, low=0, low_open=True, high=FRAME_RATE_LIMIT, source=source)
    lo, hi = FRAME_RATE_RANGE
    if not lo <= fps <= hi:
        warn(source, f"implausible frame rate of {fps:g} fps ({name}; expected {lo:g}-{hi:g} fps)")
    return fps


def finite_array(arr, source: str | Path | None, what: str = "the data") -> None:
    """Refuse NaN or infinite values in a numeric array."""
    import numpy as np

    a = np.asarray(arr)
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise InputError(source, f"{what} contains {bad} NaN or infinite value(s)")


def audio_samples(wav, source: str | Path | None) -> None:
    """Refuse float audio that cannot be a recording: non-finite samples, or samples beyond +-1000 (+60 dB over
    full scale: a float file that was not scaled to [-1, 1]); the model would compute NaN from it."""
    import numpy as np

    finite_array(wav, source, "audio")
    a = np.asarray(wav)
    if a.size:
        peak = float(np.abs(a).max())
        if peak > FLOAT_AUDIO_LIMIT:
            raise InputError(source, f"audio samples reach {peak:.3g}: float audio must lie in [-1, 1] "
                                     f"(refused beyond +-{FLOAT_AUDIO_LIMIT:g}); rescale the file")


# --------------------------------------------------------------------------------------------- resources


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable, or the cgroup's limit minus its use when lower."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 40
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            used = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < (1 << 60):
            avail = min(avail, max(0, int(limit) - used))
    return int(avail)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(nbytes: float, what: str, source: str | Path | None = None, fraction: float = 0.8) -> None:
    """Refuse an allocation of ``nbytes`` that cannot fit in ``fraction`` of the available memory."""
    avail = available_memory()
    if nbytes > fraction * avail:
        raise InputError(source, f"{what} would need {format_bytes(nbytes)} of memory, {format_bytes(avail)} is "
                                 "available")


def device(value: str | None, name: str = "--device") -> str | None:
    """A torch device string that exists on this machine (None: the caller's default).

    ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are accepted; a CUDA device on a machine without one is refused
    with ``no CUDA device: use --device cpu``, a CUDA index beyond the visible devices with their count."""
    if value is None:
        return None
    text = str(value).strip().lower()
    m = re.fullmatch(r"(cpu|cuda|mps)(?::(\d+))?", text)
    if not m or (m.group(1) == "cpu" and m.group(2) not in (None, "0")):
        raise InputError(None, f"{name} {value!r}: expected cpu, cuda, cuda:N or mps")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(None, f"no CUDA device: use {name} cpu")
        if index is not None and int(index) >= count:
            raise InputError(None, f"{name} {value}: CUDA device {index} does not exist ({count} visible: "
                                   f"cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    elif kind == "mps":
        import torch

        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(None, f"no MPS device: use {name} cpu")
    return text
