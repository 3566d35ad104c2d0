"""The wav2uti floors (articulate.baselines.wav2uti) against independent closed forms (numpy lstsq)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from articulate.baselines.wav2uti import RidgeProbe, heldout_errors, ridge_solution

torch.set_num_threads(1)


def _np_ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with an unpenalised intercept by least squares on the augmented system (an independent route)."""
    mx, my = x.mean(0), y.mean(0)
    xa = np.concatenate([x - mx, np.sqrt(penalty) * np.eye(x.shape[1])])
    ya = np.concatenate([y - my, np.zeros((x.shape[1], y.shape[1]))])
    w = np.linalg.lstsq(xa, ya, rcond=None)[0]
    return w, my - mx @ w


def test_ridge_solution_and_heldout_errors_match_lstsq():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 5))
    xv, yv = rng.normal(size=(15, 6)), rng.normal(size=(15, 5))
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    for p in (0.01, 1.0, 30.0):
        w, b = _np_ridge(x, y, p)
        np.testing.assert_allclose(ridge_solution(t(xc.T @ xc), t(xc.T @ yc), p).numpy(), w, rtol=1e-9, atol=1e-12)
    pens = [0.01, 0.3, 1.0, 30.0, 1e4]
    got = heldout_errors(t(xc.T @ xc), t(xc.T @ yc), t(xv - mx), t(yv - my), pens).numpy()
    want = []
    for p in pens:
        w, b = _np_ridge(x, y, p)
        want.append(((yv - xv @ w - b) ** 2).sum())
    np.testing.assert_allclose(got, want, rtol=1e-9)


def _clips(rng, n, t=4, res=6, sr=16000, fps=60.0):
    audio = rng.normal(size=(n, int(round(t * sr / fps)))).astype(np.float32) * 0.1
    video = rng.uniform(-1, 1, size=(n, 1, t, res, res)).astype(np.float32)
    return torch.from_numpy(audio), torch.from_numpy(video)


def test_probe_fits_the_standardised_ridge_and_picks_alpha_on_heldout_clips():
    rng = np.random.default_rng(1)
    probe = RidgeProbe(n_mels=4, context=1, alphas=[1e-3, 1e-1, 10.0]).bind(16000, 60.0)
    train = [_clips(rng, 5) for _ in range(3)]
    held = [_clips(rng, 4)]
    # targets partly explained by the features, so the fit is not degenerate
    feats = [probe.features(a, 4).numpy() for a, _ in train + held]
    mix = rng.normal(size=(feats[0].shape[1], 36)) * 0.05
    data = []
    for (a, v), f in zip(train + held, feats):
        y = np.clip(f @ mix + 0.3 * v[:, 0].reshape(-1, 36).numpy(), -1, 1).astype(np.float32)
        data.append((a, torch.from_numpy(y.reshape(v.shape[0], 4, 6, 6)[:, None])))
    for a, v in data[:3]:
        probe.add(a, v)
    for a, v in data[3:]:
        probe.add_heldout(a, v)
    probe.fit()

    x = np.concatenate(feats[:3])
    y = np.concatenate([v[:, 0].reshape(-1, 36).numpy() for _, v in data[:3]])
    xv, yv = feats[3], data[3][1][:, 0].reshape(-1, 36).numpy()
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-6, sd, 1.0)
    errs = {}
    for al in probe.alphas:
        w, b = _np_ridge((x - mu) / sd, y, al * len(x))
        errs[al] = ((yv - ((xv - mu) / sd) @ w - b) ** 2).mean()
    assert probe.alpha == min(errs, key=errs.get)
    for al in probe.alphas:
        assert probe.heldout_rmse[al] == pytest.approx(np.sqrt(errs[al]), rel=1e-6)
    w, b = _np_ridge((x - mu) / sd, y, probe.alpha * len(x))
    a_test = data[3][0]
    want = np.clip(((feats[3] - mu) / sd) @ w + b, -1, 1).reshape(4, 1, 4, 6, 6)
    np.testing.assert_allclose(probe.predict(a_test, 4).numpy(), want, atol=2e-5)
    np.testing.assert_allclose(probe.mean_frame.numpy(), y.mean(0).reshape(6, 6), atol=1e-6)
    assert probe.mean_video(data[3][1]).shape == (4, 1, 4, 6, 6)


def test_probe_without_heldout_uses_the_default_alpha_and_tends_to_the_mean():
    rng = np.random.default_rng(2)
    probe = RidgeProbe(n_mels=4, context=0, default_alpha=1e9).bind(16000, 60.0)
    a, v = _clips(rng, 6)
    probe.add(a, v)
    probe.fit()
    assert probe.alpha == 1e9 and not probe.heldout_rmse
    mean = v[:, 0].reshape(-1, 36).mean(0).reshape(6, 6)
    np.testing.assert_allclose(probe.predict(a, 4)[0, 0, 0].numpy(), mean.numpy(), atol=1e-5)
    with pytest.raises(RuntimeError, match="no training clips"):
        RidgeProbe().bind(16000, 60.0).fit()
    with pytest.raises(ValueError):
        RidgeProbe(alphas=[0.0])
