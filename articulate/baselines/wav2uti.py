"""Floors of the wav2uti tables: the training set's mean frame and a closed-form ridge probe.

* Mean frame: the mean of every training frame, predicted for every test frame (no audio used).
* Ridge probe: the DNN baseline's input (log-mel frames of the clip's audio,
  :class:`~articulate.networks.wav2uti.encoders.LogMelEncoder`, with a symmetric window of
  ``context`` frames, edges replicated inside the clip: :func:`~articulate.networks.wav2uti.dnn.context_windows`)
  mapped to the frame's pixels by one linear map: ridge regression with an unpenalised intercept on
  z-scored features, solved in closed form from streamed sums (``X'X``, ``X'Y``, the means: nothing
  per frame is kept). The penalty is ``alpha * N`` (N training frames, so ``alpha`` does not depend
  on the data size); ``alpha`` is chosen from ``alphas`` by the squared error on held-out clips
  (the validation speakers), computed for every ``alpha`` at once in the eigenbasis of the training
  covariance; without held-out clips it is ``default_alpha``. As ``alpha`` grows the probe tends to
  the mean frame, which is its intercept.

Pixels are on the [-1, 1] scale of the clips; predictions are clamped to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["RidgeProbe", "ridge_solution", "heldout_errors", "accumulate_sums", "centred_sums"]

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-4, 2, 13))


def ridge_solution(xtx: torch.Tensor, xty: torch.Tensor, penalty: float) -> torch.Tensor:
    """``(X'X + penalty I)^-1 X'Y`` for centred sums (the weights of centred ridge regression)."""
    eye = torch.eye(xtx.shape[0], dtype=xtx.dtype, device=xtx.device)
    return torch.linalg.solve(xtx + penalty * eye, xty)


def accumulate_sums(sums: dict[str, torch.Tensor] | None, x: torch.Tensor, y: torch.Tensor,
                    with_yy: bool = False) -> dict[str, torch.Tensor]:
    """Add a batch of float64 rows ``x [N, D]``, ``y [N, P]`` to ridge regression's streamed sums (``n``, ``sx``,
    ``sxx``, ``sy``, ``xtx``, ``xty``; ``syy`` with ``with_yy``); ``sums`` None starts them."""
    parts = {"n": torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device), "sx": x.sum(0),
             "sxx": (x * x).sum(0), "sy": y.sum(0), "xtx": x.T @ x, "xty": x.T @ y}
    if with_yy:
        parts["syy"] = (y * y).sum(0)
    if sums is None:
        return parts
    for k, v in parts.items():
        sums[k] += v
    return sums


def centred_sums(s: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                      torch.Tensor]:
    """``(n, mean x, mean y, sd x, X'X, X'Y)`` of the sums, centred, on z-scored features; constant features (e.g.
    silent mel bands) keep sd 1, stay constant and get zero weight."""
    n = float(s["n"])
    mx, my = s["sx"] / n, s["sy"] / n
    var = (s["sxx"] / n - mx * mx).clamp_min(0)
    sd = torch.where(var > 1e-12, var.sqrt(), torch.ones_like(var))
    xtx = (s["xtx"] - n * torch.outer(mx, mx)) / torch.outer(sd, sd)
    xty = (s["xty"] - n * torch.outer(mx, my)) / sd[:, None]
    return n, mx, my, sd, xtx, xty


def heldout_errors(xtx: torch.Tensor, xty: torch.Tensor, a: torch.Tensor, z: torch.Tensor,
                   penalties: Sequence[float]) -> torch.Tensor:
    """Sum of squared held-out errors ``||Z - A W(p)||^2`` for every penalty ``p``, with
    ``W(p) = (X'X + p I)^-1 X'Y`` (centred training sums), ``A`` the held-out features and ``Z`` the
    held-out targets, both centred by the *training* means.

    In the eigenbasis ``X'X = V diag(s) V'``: ``W = V G B`` with ``B = V' X'Y`` and ``G = diag(1/(s+p))``,
    so ``||Z - A W||^2 = ||Z||^2 - 2 g.(rowsum((V'A'Z) * B)) + g' ((V'A'AV) * (BB')) g``: the products
    are formed once and each penalty costs ``O(D^2)``.
    """
    s, v = torch.linalg.eigh(xtx)
    s = s.clamp_min(0)
    b = v.T @ xty  # [D, P]
    av = a @ v  # [N, D]
    cross = ((av.T @ z) * b).sum(1)  # [D]
    quad = (av.T @ av) * (b @ b.T)  # [D, D]
    zz = (z * z).sum()
    out = []
    for p in penalties:
        g = 1.0 / (s + float(p))
        out.append(zz - 2 * (g * cross).sum() + g @ quad @ g)
    return torch.stack(out)


class RidgeProbe:
    """Ridge from the DNN baseline's acoustic input to pixels, and the mean frame (see the module docstring).

    Use: :meth:`bind` (the data's audio rate and frame rate), :meth:`add` training clips and optionally
    :meth:`add_heldout` held-out clips, :meth:`fit`, then :meth:`predict` / :attr:`mean_frame`.

    Args:
        n_mels, n_fft, hop_length: the log-mel features (as the DNN baseline's encoder).
        context: frames on each side in the feature window (the DNN baseline's 5).
        alphas: candidate penalties per training frame, chosen on held-out clips.
        default_alpha: the penalty without held-out clips.
    """

    def __init__(self, n_mels: int = 80, context: int = 5, n_fft: int = 400, hop_length: int = 160,
                 alphas: Sequence[float] = DEFAULT_ALPHAS, default_alpha: float = 1.0):
        if int(context) < 0 or int(n_mels) < 1:
            raise ValueError(f"context must be >= 0 and n_mels >= 1, got {context}, {n_mels}")
        if not alphas or min(float(a) for a in alphas) <= 0 or float(default_alpha) <= 0:
            raise ValueError("alphas and default_alpha must be positive")
        self.n_mels, self.context, self.n_fft, self.hop_length = int(n_mels), int(context), int(n_fft), int(hop_length)
        self.alphas, self.default_alpha = [float(a) for a in alphas], float(default_alpha)
        self.encoder = None
        self.fps = 60.0
        self.margin = 0
        self.device = torch.device("cpu")
        self.reset()

    # ------------------------------------------------------------------ setup
    def bind(self, sample_rate: int, fps: float, device: torch.device | str = "cpu", margin: int = 0) -> RidgeProbe:
        """``margin``: frames of speech context the clips' audio carries on each side (the data's
        ``condition_context``): the probe's windows then read real speech across the clip's edges."""
        from articulate.networks.wav2uti.encoders import LogMelEncoder

        self.device = torch.device(device)
        self.margin = int(margin)
        self.encoder = LogMelEncoder(sample_rate=int(sample_rate), n_mels=self.n_mels, n_fft=self.n_fft,
                                     hop_length=self.hop_length).to(self.device)
        self.fps = float(fps)
        return self

    def reset(self) -> None:
        self._sums: dict[str, torch.Tensor] | None = None
        self._held: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.weight = self.bias = self.mean_y = None
        self.alpha: float | None = None
        self.heldout_rmse: dict[float, float] = {}
        self.frame_shape: tuple[int, int] | None = None

    @property
    def fitted(self) -> bool:
        return self.weight is not None

    # ------------------------------------------------------------------ features
    def features(self, audio: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Clip audio ``[B, L]`` (with ``margin`` frames on each side) -> ``[B * T, D]`` float64 rows (log-mel
        with context, frame-major per clip); ``n_frames``: the clip's T."""
        from articulate.networks.wav2uti.dnn import context_windows

        if self.encoder is None:
            raise RuntimeError("RidgeProbe.bind(sample_rate, fps) first")
        m = self.margin
        with torch.no_grad():
            f = self.encoder(audio.to(self.device).float(), fps=self.fps, n_frames=int(n_frames) + 2 * m)
            x = context_windows(f, self.context)[:, m:m + int(n_frames)]
        return x.reshape(-1, x.shape[-1]).double()

    @staticmethod
    def _targets(video: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, H, W]`` -> ``[B * T, H * W]`` float64 (the same frame-major order as the features)."""
        b, _, t, h, w = video.shape
        return video[:, 0].reshape(b * t, h * w).double()

    # ------------------------------------------------------------------ fitting
    def add(self, audio: torch.Tensor, video: torch.Tensor) -> None:
        """Accumulate a batch of training clips (audio ``[B, L]``, video ``[B, 1, T, H, W]`` in [-1, 1])."""
        x, y = self.features(audio, video.shape[2]), self._targets(video.to(self.device))
        self.frame_shape = tuple(video.shape[-2:])
        self._sums = accumulate_sums(self._sums, x, y)

    def add_heldout(self, audio: torch.Tensor, video: torch.Tensor) -> None:
        """Keep a batch of held-out clips for choosing ``alpha`` (their features and pixels are stored)."""
        self._held.append((self.features(audio, video.shape[2]), self._targets(video.to(self.device))))

    def fit(self) -> RidgeProbe:
        if self._sums is None or float(self._sums["n"]) < 2:
            raise RuntimeError("RidgeProbe.fit: no training clips were added")
        n, mx, my, scale, xtx, xty = centred_sums(self._sums)
        if self._held:
            a = (torch.cat([h[0] for h in self._held]) - mx) / scale
            z = torch.cat([h[1] for h in self._held]) - my
            err = heldout_errors(xtx, xty, a, z, [al * n for al in self.alphas])
            self.heldout_rmse = {al: float((e.clamp_min(0) / z.numel()).sqrt()) for al, e in zip(self.alphas, err)}
            self.alpha = self.alphas[int(torch.argmin(err))]
        else:
            self.alpha = self.default_alpha
        w = ridge_solution(xtx, xty, self.alpha * n)
        self.weight = (w / scale[:, None]).float()  # on raw features
        self.bias = (my - (mx / scale) @ w).float()
        self.mean_y = my.float()
        self._sums, self._held = None, []  # the sums are not needed any more (they are D x P)
        return self

    # ------------------------------------------------------------------ predicting
    @property
    def mean_frame(self) -> torch.Tensor:
        """The training set's mean frame ``[H, W]`` in [-1, 1]."""
        if self.weight is None:
            raise RuntimeError("RidgeProbe is not fitted")
        return self.mean_y.reshape(self.frame_shape).clamp(-1, 1)

    def mean_video(self, like: torch.Tensor) -> torch.Tensor:
        """The mean frame for every frame of ``like`` ``[B, 1, T, H, W]``."""
        return self.mean_frame.to(like.device, like.dtype).expand(like.shape[0], 1, like.shape[2], *self.frame_shape)

    def predict(self, audio: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Clip audio ``[B, L]`` -> video ``[B, 1, T, H, W]`` in [-1, 1]."""
        if self.weight is None:
            raise RuntimeError("RidgeProbe is not fitted")
        x = self.features(audio, n_frames).float()
        y = (x @ self.weight + self.bias).clamp(-1, 1)
        b = audio.shape[0]
        return y.reshape(b, 1, int(n_frames), *self.frame_shape)

    def describe(self) -> str:
        chosen = "default, no held-out clips" if not self.heldout_rmse else "chosen on held-out clips"
        return (f"ridge probe: log-mel {self.n_mels} x (2*{self.context}+1) frames -> pixels, "
                f"alpha {self.alpha:g} per frame ({chosen})")
