"""Is the phantom's image-sound pairing learnable? Ridge regression on held-out subjects vs mean baselines.

- mri2audio: downsampled MRI frames minus their sequence mean, PCA codes at each mel frame's time
  (+- one MRI frame) and their squares -> dB mel column. Score: Corr2D (MATLAB corr2) of the
  64x64 dB mel of the centred 21,000-sample crop (librosa, n_fft 1024, hop 330, 64 mels), against
  the per-utterance mean mel of the training subjects.
- wav2uti: PCA codes of log-mel frames with +-80 ms context and the speaker's mean code -> scan
  lines pooled to 16 x 16. Score: RMSE (0-255 pixel units) against the per-speaker mean frame
  (an oracle that knows the held-out speaker's own frames) and the training mean frame. Reported
  twice: audio only (``ridge_rmse``), and calibrated by the held-out speaker's mean frame
  (``adapted_ridge_rmse``: the regression predicts each frame's deviation from its speaker's
  mean, which isolates whether the audio predicts the tongue's motion).

Everything is read back through :mod:`articulate.readers`, so the check also covers the files.
Folds are grouped by subject: no subject is in both training and test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from articulate.baselines.linear import ridge_path, ridge_predict

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
    return ridge_path(x, y, [lam])[0]


def _folds(groups: list[str], k: int, seed: int) -> list[np.ndarray]:
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    fold_of = {uniq[i]: n % k for n, i in enumerate(order)}
    return [np.array([fold_of[g] == f for g in groups]) for f in range(min(k, len(uniq)))]


def _choose_lambda(x: np.ndarray, y: np.ndarray, groups: np.ndarray, score, lams=(1e-4, 1e-3, 1e-2, 1e-1, 1.0)) -> float:
    """Pick the ridge strength on a subject-disjoint split of the training data only."""
    uniq = np.unique(groups)
    val = np.isin(groups, uniq[:: max(len(uniq) // 4, 2)][: max(1, len(uniq) // 4)])
    if val.all() or not val.any():
        return lams[len(lams) // 2]
    models = ridge_path(x[~val], y[~val], lams)
    scores = [score(ridge_predict(m, x[val]), y[val]) for m in models]
    return lams[int(np.argmin(scores))]


# --------------------------------------------------------------------------------------------- MRI -> mel


def _pooled_motion(frames: np.ndarray, pool: int = 4) -> np.ndarray:
    """Frames pooled ``pool`` x ``pool`` minus the sequence's mean frame: the subject's static
    anatomy cancels out and what moves remains. [T, (H/pool)*(W/pool)]"""
    t, h, w = frames.shape
    small = frames[:, : h // pool * pool, : w // pool * pool].reshape(t, h // pool, pool, w // pool, pool).mean((2, 4))
    small = small.reshape(t, -1)
    return small - small.mean(0, keepdims=True)


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    return mu, vt[:k]


def _at_times(z: np.ndarray, frame_t: np.ndarray, times: np.ndarray, step: float) -> np.ndarray:
    """Per-frame codes interpolated at ``times`` and one frame either side, with their squares
    (a second-order expansion: the articulatory-to-acoustic map is not linear)."""
    cols = []
    for dt in (-step, 0.0, step):
        q = np.clip(times + dt, frame_t[0], frame_t[-1])
        cols.append(np.stack([np.interp(q, frame_t, c) for c in z.T], 1))
    x = np.concatenate(cols, 1)
    return np.concatenate([x, x * x], 1)


def mri_to_mel(root: str | Path, folds: int = 5, seed: int = 0, components: int = 20) -> dict:
    """Ridge MRI -> mel vs per-utterance mean mel on held-out subjects (Corr2D, higher is better).

    Features: pooled motion frames projected on their first ``components`` principal components
    (fitted on the training subjects of each fold), at each mel frame's time +- one MRI frame,
    plus squares.
    """
    from articulate.readers.audio import read_audio
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.mri import read_mri

    recs = [r for r in index_dataset(root) if r.kind == "mri"]
    motion, mels, times, frame_t, subj, utt = [], [], [], [], [], []
    for r in recs:
        seq = read_mri(r.image)
        wav, sr = read_audio(r.audio)
        mel, start = mel_db(wav, sr)
        duration = len(wav) / sr
        n = len(seq.frames)
        motion.append(_pooled_motion(seq.frames))
        mels.append(mel)
        times.append((start + np.arange(mel.shape[1]) * MEL["hop_length"]) / MEL["sr"])
        frame_t.append((np.arange(n) + 0.5) * duration / n)
        subj.append(r.subject)
        utt.append(r.utterance)
    subj_a, utt_a = np.array(subj), np.array(utt)
    ridge_r, mean_r = np.zeros(len(recs)), np.zeros(len(recs))

    def score(pred: np.ndarray, true: np.ndarray) -> float:
        return float(np.mean((pred - true) ** 2))

    for test in _folds(subj, folds, seed):
        train = np.flatnonzero(~test)
        mu, comps = _pca(np.concatenate([motion[i] for i in train]), components)
        xs = [_at_times((m - mu) @ comps.T, ft, t, ft[1] - ft[0]) for m, ft, t in zip(motion, frame_t, times)]
        x = np.concatenate([xs[i] for i in train])
        y = np.concatenate([mels[i].T for i in train])
        groups = np.repeat(subj_a[train], [len(xs[i]) for i in train])
        model = _ridge_fit(x, y, _choose_lambda(x, y, groups, score))
        for i in np.flatnonzero(test):
            pred = ridge_predict(model, xs[i]).T
            ridge_r[i] = corr2(pred, mels[i])
            same = [mels[j] for j in train if utt_a[j] == utt_a[i]] or [mels[j] for j in train]
            mean_r[i] = corr2(np.mean(same, 0), mels[i])
    return {"recordings": len(recs), "subjects": len(set(subj)), "folds": folds,
            "ridge_corr2d": float(ridge_r.mean()), "utterance_mean_corr2d": float(mean_r.mean()),
            "ridge_wins": float(np.mean(ridge_r > mean_r))}


# --------------------------------------------------------------------------------------------- audio -> US


def _logmel_frames(wav: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel frames [T, 40] every 10 ms and their times (s)."""
    import librosa

    hop = int(sr * 0.01)
    mel = librosa.feature.melspectrogram(y=wav, sr=sr, n_fft=512, hop_length=hop, n_mels=40, center=True)
    return np.log(np.maximum(mel, 1e-8)).T, np.arange(mel.shape[1]) * hop / sr


def _audio_features(codes: np.ndarray, code_t: np.ndarray, times: np.ndarray, speaker: np.ndarray,
                    context: int = 4, step_s: float = 0.02, squares: bool = False) -> np.ndarray:
    """Codes at each frame time +- ``context`` steps and the speaker's mean code (optionally squares)."""
    cols = [np.stack([np.interp(times + d * step_s, code_t, c) for c in codes.T], 1)
            for d in range(-context, context + 1)]
    x = np.concatenate(cols + [np.repeat(speaker[None], len(times), 0)], 1)
    return np.concatenate([x, x * x], 1) if squares else x


def _us_targets(scan: np.ndarray, pool: tuple[int, int] = (4, 16)) -> np.ndarray:
    f, v, p = scan.shape
    a, b = pool
    return scan[:, : v // a * a, : p // b * b].reshape(f, v // a, a, p // b, b).astype(np.float64).mean((2, 4)).reshape(f, -1)


def audio_to_ultrasound(root: str | Path, folds: int = 11, seed: int = 0, components: int = 10,
                        squares: bool = False) -> dict:
    """Ridge audio -> ultrasound frame vs mean frames on held-out speakers (RMSE, 0-255, lower is better)."""
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.ultrasound import read_utterance

    recs = [r for r in index_dataset(root) if r.kind == "ultrasound"]
    logmels, mel_t, frame_t, ys, subj = [], [], [], [], []
    for r in recs:
        u = read_utterance(r.image)
        lm, lt = _logmel_frames(u.audio, u.sr)
        logmels.append(lm)
        mel_t.append(lt)
        frame_t.append((np.arange(len(u.scanlines)) + 0.5) / u.params.fps)  # audio starts at frame 0 after trimming
        ys.append(_us_targets(u.scanlines))
        subj.append(r.subject)
    subj_a = np.array(subj)

    def features(train: np.ndarray) -> list[np.ndarray]:
        # PCA of log-mel frames fitted on the training speakers; each frame also sees its speaker's
        # mean code (speaker adaptation from audio only: the formant scale reveals the tract length)
        mu, comps = _pca(np.concatenate([logmels[i] for i in train]), components)
        codes = [(lm - mu) @ comps.T for lm in logmels]
        spk = {s: np.concatenate([codes[i] for i in np.flatnonzero(subj_a == s)]).mean(0) for s in set(subj)}
        return [_audio_features(c, t, ft, spk[s], squares=squares) for c, t, ft, s in zip(codes, mel_t, frame_t, subj)], spk

    err = {"ridge": [], "adapted": [], "speaker_mean": [], "global_mean": []}
    counts = []
    score = lambda p, t: float(np.mean((p - t) ** 2))  # noqa: E731
    for test in _folds(subj, folds, seed):
        train = np.flatnonzero(~test)
        xs, _ = features(train)
        x = np.concatenate([xs[i] for i in train])
        y = np.concatenate([ys[i] for i in train])
        groups = np.repeat(subj_a[train], [len(xs[i]) for i in train])
        model = _ridge_fit(x, y, _choose_lambda(x, y, groups, score))
        # speaker-adapted: the same regression predicting each frame's deviation from its speaker's
        # mean frame, added to the held-out speaker's mean frame (calibration by that speaker's images)
        spk_mean = {g: y[groups == g].mean(0) for g in np.unique(groups)}
        dev = y - np.stack([spk_mean[g] for g in groups])
        model_dev = _ridge_fit(x, dev, _choose_lambda(x, dev, groups, score))
        glob = y.mean(0)
        for s in np.unique(subj_a[test]):
            idx = [i for i in np.flatnonzero(test) if subj_a[i] == s]
            yt = np.concatenate([ys[i] for i in idx])
            xt = np.concatenate([xs[i] for i in idx])
            err["ridge"].append(np.sum((ridge_predict(model, xt) - yt) ** 2))
            err["adapted"].append(np.sum((yt.mean(0) + ridge_predict(model_dev, xt) - yt) ** 2))
            err["speaker_mean"].append(np.sum((yt.mean(0) - yt) ** 2))
            err["global_mean"].append(np.sum((glob - yt) ** 2))
            counts.append(yt.size)
    n = float(np.sum(counts))
    rmse = {k: float(np.sqrt(np.sum(v) / n)) for k, v in err.items()}
    return {"recordings": len(recs), "speakers": len(set(subj)), "folds": folds,
            "ridge_rmse": rmse["ridge"], "adapted_ridge_rmse": rmse["adapted"],
            "speaker_mean_rmse": rmse["speaker_mean"], "global_mean_rmse": rmse["global_mean"]}


def learnability(kind: str, root: str | Path, **kwargs) -> dict:
    """The figures for one cohort folder (``kind`` "mri2audio" or "wav2uti")."""
    return mri_to_mel(root, **kwargs) if kind == "mri2audio" else audio_to_ultrasound(root, **kwargs)
