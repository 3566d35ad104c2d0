"""Is the phantom's image-sound pairing learnable? Ridge regression on held-out subjects vs mean baselines.

- mri2audio: downsampled MRI frames (interpolated to each mel frame's time, with temporal context)
  -> log-mel column. Score: Corr2D (MATLAB corr2) of the 64x64 dB mel of the centred
  21,000-sample crop, against the per-utterance mean mel of the training subjects.
- wav2uti: log-mel frames with context -> downsampled scan lines of the synchronous ultrasound
  frame. Score: RMSE (0-255 pixel units) against the per-speaker mean frame (an oracle that knows
  the held-out speaker's own frames) and the training mean frame.

Everything is read back through :mod:`articulate.readers`, so the check also covers the files.
Folds are grouped by subject: no subject is in both training and test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MEL = {"sr": 22050, "n_fft": 1024, "hop_length": 330, "n_mels": 64, "crop": 21000}


def corr2(a: np.ndarray, b: np.ndarray) -> float:
    """MATLAB corr2: Pearson correlation of two 2-D arrays over all their elements."""
    a = a - a.mean()
    b = b - b.mean()
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def mel_db(wav: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """dB mel [64, 64] of the centred 21,000-sample crop (librosa, n_fft 1024, hop 330) and its start."""
    import librosa

    if sr != MEL["sr"]:
        wav = librosa.resample(wav, orig_sr=sr, target_sr=MEL["sr"])
    start = max((len(wav) - MEL["crop"]) // 2, 0)
    crop = wav[start: start + MEL["crop"]]
    mel = librosa.feature.melspectrogram(y=crop, sr=MEL["sr"], n_fft=MEL["n_fft"], hop_length=MEL["hop_length"],
                                         n_mels=MEL["n_mels"], center=True, power=2.0)
    return 10.0 * np.log10(np.maximum(mel, 1e-10)), start


def _ridge_fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, ...]:
    mx, sx = x.mean(0), x.std(0) + 1e-6
    my = y.mean(0)
    xs = (x - mx) / sx
    w = np.linalg.solve(xs.T @ xs + lam * len(xs) * np.eye(xs.shape[1]), xs.T @ (y - my))
    return mx, sx, my, w


def _ridge_predict(model: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    mx, sx, my, w = model
    return ((x - mx) / sx) @ w + my


def _folds(groups: list[str], k: int, seed: int) -> list[np.ndarray]:
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    fold_of = {uniq[i]: n % k for n, i in enumerate(order)}
    return [np.array([fold_of[g] == f for g in groups]) for f in range(min(k, len(uniq)))]


def _choose_lambda(x: np.ndarray, y: np.ndarray, groups: np.ndarray, score, lams=(1e-3, 1e-2, 1e-1, 1.0)) -> float:
    """Pick the ridge strength on a subject-disjoint split of the training data only."""
    uniq = np.unique(groups)
    val = np.isin(groups, uniq[:: max(len(uniq) // 4, 2)][: max(1, len(uniq) // 4)])
    if val.all() or not val.any():
        return lams[len(lams) // 2]
    return min(lams, key=lambda lam: score(_ridge_predict(_ridge_fit(x[~val], y[~val], lam), x[val]), y[val]))


# --------------------------------------------------------------------------------------------- MRI -> mel


def _mri_features(frames: np.ndarray, times: np.ndarray, duration: float, pool: int = 8) -> np.ndarray:
    """Pooled frames minus the sequence's mean frame (the subject's static anatomy cancels out,
    what moves remains), interpolated at each mel frame's time and one MRI frame either side."""
    t, h, w = frames.shape
    small = frames[:, : h // pool * pool, : w // pool * pool].reshape(t, h // pool, pool, w // pool, pool).mean((2, 4))
    small = small.reshape(t, -1)
    small = small - small.mean(0, keepdims=True)
    ft = (np.arange(t) + 0.5) * duration / t
    step = duration / t
    feats = []
    for dt in (-step, 0.0, step):  # the frame at the mel frame's time and its neighbours (motion)
        q = np.clip(times + dt, ft[0], ft[-1])
        i1 = np.clip(np.searchsorted(ft, q), 1, t - 1)
        a = ((q - ft[i1 - 1]) / step)[:, None]
        feats.append(small[i1 - 1] * (1 - a) + small[i1] * a)
    return np.concatenate(feats, 1)


def mri_to_mel(root: str | Path, folds: int = 5, seed: int = 0) -> dict:
    """Ridge MRI -> mel vs per-utterance mean mel on held-out subjects (Corr2D, higher is better)."""
    from articulate.readers.audio import read_audio
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.mri import read_mri

    recs = [r for r in index_dataset(root) if r.kind == "mri"]
    xs, mels, subj, utt = [], [], [], []
    for r in recs:
        seq = read_mri(r.image)
        wav, sr = read_audio(r.audio)
        mel, start = mel_db(wav, sr)
        duration = len(wav) / sr
        times = (start + np.arange(mel.shape[1]) * MEL["hop_length"]) / MEL["sr"]
        xs.append(_mri_features(seq.frames, times, duration))
        mels.append(mel)
        subj.append(r.subject)
        utt.append(r.utterance)
    subj_a, utt_a = np.array(subj), np.array(utt)
    ridge_r, mean_r = np.zeros(len(recs)), np.zeros(len(recs))
    for test in _folds(subj, folds, seed):
        train = np.flatnonzero(~test)
        x = np.concatenate([xs[i] for i in train])
        y = np.concatenate([mels[i].T for i in train])
        groups = np.repeat(subj_a[train], [len(xs[i]) for i in train])

        def score(pred: np.ndarray, true: np.ndarray) -> float:
            return float(np.mean((pred - true) ** 2))

        model = _ridge_fit(x, y, _choose_lambda(x, y, groups, score))
        for i in np.flatnonzero(test):
            pred = _ridge_predict(model, xs[i]).T
            ridge_r[i] = corr2(pred, mels[i])
            same = [mels[j] for j in train if utt_a[j] == utt_a[i]] or [mels[j] for j in train]
            mean_r[i] = corr2(np.mean(same, 0), mels[i])
    return {"recordings": len(recs), "subjects": len(set(subj)), "folds": folds,
            "ridge_corr2d": float(ridge_r.mean()), "utterance_mean_corr2d": float(mean_r.mean()),
            "ridge_wins": float(np.mean(ridge_r > mean_r))}


# --------------------------------------------------------------------------------------------- audio -> US


def _audio_features(wav: np.ndarray, sr: int, times: np.ndarray, context: int = 4, step_s: float = 0.02) -> np.ndarray:
    import librosa

    hop = int(sr * 0.01)
    mel = librosa.feature.melspectrogram(y=wav, sr=sr, n_fft=512, hop_length=hop, n_mels=40, center=True)
    logmel = np.log(np.maximum(mel, 1e-8))  # [40, T] at 100 Hz
    ft = np.arange(logmel.shape[1]) * hop / sr
    cols = []
    for d in range(-context, context + 1):
        q = times + d * step_s
        cols.append(np.stack([np.interp(q, ft, band) for band in logmel], 1))
    return np.concatenate(cols, 1)


def _us_targets(scan: np.ndarray, pool: tuple[int, int] = (4, 16)) -> np.ndarray:
    f, v, p = scan.shape
    a, b = pool
    return scan[:, : v // a * a, : p // b * b].reshape(f, v // a, a, p // b, b).astype(np.float64).mean((2, 4)).reshape(f, -1)


def audio_to_ultrasound(root: str | Path, folds: int = 4, seed: int = 0) -> dict:
    """Ridge audio -> ultrasound frame vs mean frames on held-out speakers (RMSE, 0-255, lower is better)."""
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.ultrasound import read_utterance

    recs = [r for r in index_dataset(root) if r.kind == "ultrasound"]
    xs, ys, subj = [], [], []
    for r in recs:
        u = read_utterance(r.image)
        times = (np.arange(len(u.scanlines)) + 0.5) / u.params.fps  # audio starts at frame 0 after trimming
        xs.append(_audio_features(u.audio, u.sr, times))
        ys.append(_us_targets(u.scanlines))
        subj.append(r.subject)
    subj_a = np.array(subj)
    # speaker adaptation from audio only: each frame also sees its speaker's mean audio features
    # (vocal-tract length shows in the formant scale, and it sets the size of the anatomy)
    for s in np.unique(subj_a):
        idx = np.flatnonzero(subj_a == s)
        spk = np.concatenate([xs[i] for i in idx]).mean(0)
        for i in idx:
            xs[i] = np.concatenate([xs[i], np.repeat(spk[None], len(xs[i]), 0)], 1)
    err_ridge, err_spk, err_glob, counts = [], [], [], []
    for test in _folds(subj, folds, seed):
        train = np.flatnonzero(~test)
        x = np.concatenate([xs[i] for i in train])
        y = np.concatenate([ys[i] for i in train])
        groups = np.repeat(subj_a[train], [len(xs[i]) for i in train])
        model = _ridge_fit(x, y, _choose_lambda(x, y, groups, lambda p, t: float(np.mean((p - t) ** 2))))
        glob = y.mean(0)
        for s in np.unique(subj_a[test]):
            idx = [i for i in np.flatnonzero(test) if subj_a[i] == s]
            yt = np.concatenate([ys[i] for i in idx])
            pred = np.concatenate([_ridge_predict(model, xs[i]) for i in idx])
            err_ridge.append(np.sum((pred - yt) ** 2))
            err_spk.append(np.sum((yt.mean(0) - yt) ** 2))
            err_glob.append(np.sum((glob - yt) ** 2))
            counts.append(yt.size)
    n = float(np.sum(counts))
    return {"recordings": len(recs), "speakers": len(set(subj)), "folds": folds,
            "ridge_rmse": float(np.sqrt(np.sum(err_ridge) / n)),
            "speaker_mean_rmse": float(np.sqrt(np.sum(err_spk) / n)),
            "global_mean_rmse": float(np.sqrt(np.sum(err_glob) / n))}


def learnability(kind: str, root: str | Path, **kwargs) -> dict:
    """The figures for one cohort folder (``kind`` "mri2audio" or "wav2uti")."""
    return mri_to_mel(root, **kwargs) if kind == "mri2audio" else audio_to_ultrasound(root, **kwargs)
