"""Corr2D after time alignment: how much of a spectrogram's error is *when*, not *what*.

A predicted mel that has the right sounds at slightly wrong moments loses Corr2D like one with wrong
sounds. Warping the prediction onto the target's timeline along their dynamic-time-warping path
(librosa's DTW on the frames' Euclidean distances) and scoring that with Corr2D separates the two:
``corr2d_warped - corr2d`` is what the timing costs. The warp can only repeat and skip frames, never
change a frame's spectrum, so a warped score near 1 means the prediction's sounds are right.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from articulate.metrics.corr2d import Corr2D


def warp_onto(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source [F, T1]`` on the timeline of ``target [F, T2]``: each target frame gets the mean of the source
    frames the DTW path matches to it."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[0] != target.shape[0]:
        raise ValueError(f"expected [F, T] images with the same F, got {source.shape} and {target.shape}")
    _, path = librosa.sequence.dtw(X=target, Y=source, metric="euclidean")
    out = np.zeros_like(target)
    count = np.zeros(target.shape[1])
    np.add.at(out.T, path[:, 0], source.T[path[:, 1]])
    np.add.at(count, path[:, 0], 1.0)
    return out / count


class WarpedCorr2D(Corr2D):
    """Mean Corr2D of each prediction warped onto its target's timeline (:func:`warp_onto`).

    ``update(pred, target, sample_index=None, valid=None)`` with ``[B, ..., F, T]`` tensors (frequency, then
    time); every trailing image is one coefficient, scored and averaged by :class:`~articulate.metrics.corr2d.Corr2D`.
    """

    registered_name = "corr2d_warped"
    default_inputs = ("mel_pred", "mel_target")

    def update(self, pred: torch.Tensor, target: torch.Tensor, sample_index: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        p = pred.detach().double().cpu().reshape(-1, *pred.shape[-2:]).numpy()
        t = target.detach().double().cpu().reshape(-1, *target.shape[-2:]).numpy()
        warped = torch.from_numpy(np.stack([warp_onto(a, b) for a, b in zip(p, t)])).reshape(pred.shape)
        super().update(warped.to(target.device), target, sample_index, valid)
