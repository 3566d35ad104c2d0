"""A linear probe of MRI -> mel: closed-form ridge regression on pooled motion features.

What a model must beat to show that it reads more than a second-order linear map of the motion:
each mel frame is predicted from the MRI sequence's motion around that frame's time.

Features of one item (an MRI sequence ``[T, H, W]`` and the time of each mel frame in MRI-frame
units): the frames average-pooled to ``grid x grid`` minus the sequence's mean frame (the static
anatomy and tag grid cancel, what moves remains), projected on their first ``components``
principal components (fitted on the training frames), read at each mel frame's time and
``context`` MRI frames either side (linear interpolation), plus their squares (the
articulatory-to-acoustic map is not linear). A ridge regression maps them to the unit-scale mel
column; the strength is chosen on a subject-disjoint quarter of the training items, then the
model is refitted on all of them. The same features as ``articulate.phantom.learnability``.

The probe is told where each mel frame lies in the MRI sequence (``frame_positions``): it is
time-aligned. A model that sees the whole sequence without the crop's position is not; see
``datamodules.mri2audio`` (``mri_window``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from articulate.baselines.linear import ridge_path, ridge_predict


def frame_positions(crop_start: float, mel_frames: int, hop_length: int, span: tuple[float, float],
                    mri_frames: int) -> np.ndarray:
    """Where mel frame j of a crop lies on the MRI sequence, in fractional frame indices.

    Mel frame j (``center=True``) is centred on sample ``crop_start + j * hop_length`` of the
    recording; the ``mri_frames`` MRI frames cover the samples ``span = (first, end)`` in equal
    windows, frame k centred on ``first + (k + 0.5) * (end - first) / mri_frames``.
    """
    first, end = float(span[0]), float(span[1])
    t = float(crop_start) + np.arange(mel_frames) * float(hop_length)
    return (t - first) / max(end - first, 1e-9) * mri_frames - 0.5


class RidgeProbe:
    """Ridge regression MRI motion features -> unit-scale mel columns (see the module docstring).

    Args:
        grid: side of the pooled frames (16: 64-px frames pooled 4 x 4, 128-px frames 8 x 8).
        components: principal components of the pooled motion frames.
        context: MRI frames either side of a mel frame's time that are read too.
        squares: add the squares of the features.
        lambdas: ridge strengths tried (scaled by the number of rows); the best on held-out
            training subjects is kept.
    """

    def __init__(self, grid: int = 16, components: int = 20, context: int = 1, squares: bool = True,
                 lambdas: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)):
        self.grid, self.components, self.context, self.squares = int(grid), int(components), int(context), bool(squares)
        self.lambdas = tuple(float(v) for v in lambdas)
        self.state: dict[str, np.ndarray] | None = None

    # -- features -----------------------------------------------------------------------------
    def pooled_motion(self, mri: torch.Tensor | np.ndarray) -> np.ndarray:
        """``[T, H, W]`` (or ``[1, T, H, W]``) -> ``[T, grid * grid]``, minus the sequence mean."""
        x = torch.as_tensor(mri, dtype=torch.float32).reshape(-1, *tuple(mri.shape[-2:]))
        small = torch.nn.functional.adaptive_avg_pool2d(x[:, None], self.grid)[:, 0].reshape(x.shape[0], -1)
        small = small.double().numpy()
        return small - small.mean(0, keepdims=True)

    def _codes(self, motion: np.ndarray) -> np.ndarray:
        return (motion - self.state["pca_mean"]) @ self.state["pca_components"].T

    def _expand(self, codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
        t = codes.shape[0]
        frames = np.arange(t, dtype=np.float64)
        cols = []
        for d in range(-self.context, self.context + 1):
            q = np.clip(positions + d, 0.0, t - 1)
            cols.append(np.stack([np.interp(q, frames, c) for c in codes.T], 1))
        x = np.concatenate(cols, 1)
        return np.concatenate([x, x * x], 1) if self.squares else x

    def features(self, mri: torch.Tensor | np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Rows ``[len(positions), D]``, one per mel frame (needs a fitted PCA)."""
        if self.state is None:
            raise RuntimeError("RidgeProbe is not fitted")
        return self._expand(self._codes(self.pooled_motion(mri)), np.asarray(positions, np.float64))

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, items: Iterable[tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray, np.ndarray, object]]) -> RidgeProbe:
        """``items``: ``(mri [T, H, W], mel [n_mels, F] unit scale, positions [F], group)``, where
        ``group`` (the subject) keeps the strength's validation part subject-disjoint."""
        mris, mels, positions, groups = [], [], [], []
        for mri, mel, pos, group in items:
            mris.append(self.pooled_motion(mri))
            mels.append(np.asarray(torch.as_tensor(mel, dtype=torch.float64).reshape(-1, np.shape(mel)[-1])).T)
            positions.append(np.asarray(pos, np.float64))
            groups.append(group)
        if not mris:
            raise ValueError("RidgeProbe.fit needs at least one item")
        allf = np.concatenate(mris)
        mu = allf.mean(0)
        k = min(self.components, *allf.shape)
        _, _, vt = np.linalg.svd(allf - mu, full_matrices=False)
        self.state = {"pca_mean": mu, "pca_components": vt[:k]}
        xs = [self._expand(self._codes(m), p) for m, p in zip(mris, positions)]
        x, y = np.concatenate(xs), np.concatenate(mels)
        rows = np.repeat(np.arange(len(xs)), [len(v) for v in xs])
        lam = self._choose(x, y, np.array([str(g) for g in groups])[rows])
        mx, sx, my, w = ridge_path(x, y, [lam])[0]
        self.state.update(x_mean=mx, x_std=sx, y_mean=my, weights=w, strength=np.array(lam))
        return self

    def _choose(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
        uniq = np.unique(groups)
        n_val = max(1, len(uniq) // 4)
        val = np.isin(groups, uniq[:: max(len(uniq) // n_val, 1)][:n_val])
        if len(uniq) < 2 or val.all() or not val.any():
            return self.lambdas[len(self.lambdas) // 2]
        models = ridge_path(x[~val], y[~val], self.lambdas)
        errors = [float(np.mean((ridge_predict(m, x[val]) - y[val]) ** 2)) for m in models]
        return self.lambdas[int(np.argmin(errors))]

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, mri: torch.Tensor | np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The unit-scale mel ``[n_mels, len(positions)]``, clipped to [0, 1]."""
        s = self.state
        if s is None or "weights" not in s:
            raise RuntimeError("RidgeProbe is not fitted")
        y = ridge_predict((s["x_mean"], s["x_std"], s["y_mean"], s["weights"]), self.features(mri, positions))
        return np.clip(y.T, 0.0, 1.0)

    # -- state (for checkpoints) ----------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.state is None else {k: torch.as_tensor(np.asarray(v)) for k, v in self.state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor] | None) -> RidgeProbe:
        self.state = None if not state else {k: np.asarray(torch.as_tensor(v).double()) for k, v in state.items()}
        return self
