"""PESQ of one pair, run in worker processes. Imports only numpy and pesq (no torch) so that
starting a worker is cheap."""

from __future__ import annotations

import math

import numpy as np


def pesq_one(job: tuple[np.ndarray, np.ndarray, int, str]) -> tuple[float, str]:
    """``(ref, deg, fs, mode) -> (score, "")`` or ``(nan, "<ErrorName>: <message>")``."""
    from pesq import PesqError, pesq

    ref, deg, fs, mode = job
    try:
        return float(pesq(fs, ref, deg, mode)), ""
    except PesqError as err:  # NoUtterancesError, BufferTooShortError, ...
        return math.nan, f"{type(err).__name__}: {err}"
    except Exception as err:  # a C-level failure must not take the whole validation down
        return math.nan, f"{type(err).__name__}: {err}"
