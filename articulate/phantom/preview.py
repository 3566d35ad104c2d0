"""A one-page preview of a phantom cohort: tagged MRI frames, ultrasound fans with the ground-truth
tongue contour, and the mel spectrograms of the same recordings with the shown frames marked.
Everything is read back through the readers, so the sheet shows what a model will see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from articulate.errors import InputError


def _manifests(root: Path) -> list[Path]:
    if (root / "manifest.csv").is_file():
        return [root / "manifest.csv"]
    found = sorted(root.glob("*/manifest.csv"))
    if not found:
        raise InputError(root, "no phantom cohort here (no manifest.csv in it or its sub-folders)")
    return found


def _mel(ax, wav: np.ndarray, sr: int, marks: np.ndarray, title: str) -> None:
    import librosa

    hop = int(sr * 0.005)
    mel = librosa.feature.melspectrogram(y=wav, sr=sr, n_fft=1024 if sr > 16000 else 512, hop_length=hop, n_mels=64)
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 70, vmax=db.max(),
              extent=[0, len(wav) / sr, 0, 64])
    for t in marks:
        ax.axvline(t, color="c", lw=0.8, alpha=0.8)
    ax.set_ylabel("mel band")
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=9)


def _tongue_window(rec, shape: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of a 64 x 64 window centred on the subject's tongue (from its ground truth)."""
    from articulate.phantom import head
    from articulate.phantom.cohort import load_subject

    traj = rec.image.with_name(rec.image.name.split(".")[0] + ".traj.npz")
    centre = np.array([75.0, 130.0])  # reference mm: tongue body, palate and lips in view
    if traj.is_file():
        centre = head.reference_to_image(centre, load_subject(traj))
    col, row = (centre / 1.87).round().astype(int) - 32
    return int(np.clip(row, 0, shape[0] - 64)), int(np.clip(col, 0, shape[1] - 64))


def preview(root: str | Path, out: str | Path, n_frames: int = 8) -> Path:
    """Write the preview PNG of the cohort(s) under ``root`` (a cohort folder or a folder of cohorts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from articulate.phantom.groundtruth import tongue_keypoints
    from articulate.readers.audio import read_audio
    from articulate.readers.dataset_index import read_manifest
    from articulate.readers.mri import read_mri
    from articulate.readers.ultrasound import FanConverter, read_utterance
    from articulate.utils.atomic import atomic_path

    root = Path(root)
    blocks = []
    for manifest in _manifests(root):
        recs = read_manifest(manifest)
        if not recs:
            continue
        if recs[0].kind == "mri":
            seen, picks = set(), []
            for r in recs:  # one recording per word
                if r.utterance not in seen:
                    seen.add(r.utterance)
                    picks.append(r)
            blocks += [("mri", r) for r in picks[:1]] + [("mri_zoom", r) for r in picks[1:2]]
        else:
            words = [r for r in recs if r.extra.get("task") == "word"] or recs
            blocks += [("ultrasound", words[0])]
    if not blocks:
        raise InputError(root, "the cohort's manifest lists no recordings")
    fig = plt.figure(figsize=(2.0 * n_frames, 3.6 * len(blocks)))
    grid = fig.add_gridspec(2 * len(blocks), n_frames, height_ratios=[2.0, 1.2] * len(blocks), hspace=0.6,
                            wspace=0.05)
    for b, (kind, rec) in enumerate(blocks):
        if kind in ("mri", "mri_zoom"):
            seq = read_mri(rec.image)
            frames = seq.frames
            zoom = ""
            if kind == "mri_zoom":  # 64 x 64 pixels around the tongue, where the tags deform
                r0, c0 = _tongue_window(rec, seq.frames.shape[1:])
                frames = frames[:, r0: r0 + 64, c0: c0 + 64]
                zoom = f", zoomed to rows {r0}-{r0 + 63}, columns {c0}-{c0 + 63}"
            wav, sr = read_audio(rec.audio)
            idx = np.linspace(0, len(seq.frames) - 1, n_frames).round().astype(int)
            times = (idx + 0.5) * (len(wav) / sr) / len(seq.frames)
            for j, k in enumerate(idx):
                ax = fig.add_subplot(grid[2 * b, j])
                ax.imshow(frames[k], cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"frame {k} ({times[j]:.2f} s)", fontsize=8)
                ax.axis("off")
            title = f"tagged MRI {rec.id} ('{rec.utterance}'{zoom}): mel spectrogram, cyan = frames shown"
        else:
            utt = read_utterance(rec.image)
            wav, sr = utt.audio, utt.sr
            fan = FanConverter(utt.params, size=(160, 220))
            idx = np.linspace(0, utt.num_frames - 1, n_frames).round().astype(int)
            times = (idx + 0.5) / utt.params.fps
            first = utt.trim.get("frames_dropped_start", 0)
            traj_path = rec.image.with_name(rec.image.name[: -len(".ult")] + ".traj.npz")
            truth = None
            if traj_path.is_file():
                with np.load(traj_path) as z:
                    has = "surface_polar" in z.files
                if has:
                    truth = (tongue_keypoints(traj_path, fan.size, dense=True), tongue_keypoints(traj_path, fan.size))
            for j, k in enumerate(idx):
                ax = fig.add_subplot(grid[2 * b, j])
                img = fan(utt.scanlines[k].astype(np.float32))
                ax.imshow(img[::-1], cmap="gray", vmin=0, vmax=255)  # probe at the bottom, as displayed clinically
                if truth is not None:
                    c, kp = truth[0][first + k], truth[1][first + k]
                    ax.plot(c[:, 0], img.shape[0] - 1 - c[:, 1], "-", color="lime", lw=0.8, alpha=0.7)
                    ax.plot(kp[:, 0], img.shape[0] - 1 - kp[:, 1], ".", color="yellow", ms=2.5)
                ax.set_xlim(0, img.shape[1] - 1)
                ax.set_ylim(img.shape[0] - 1, 0)
                ax.set_title(f"frame {k} ({times[j]:.2f} s)", fontsize=8)
                ax.axis("off")
            title = (f"ultrasound {rec.id} ('{rec.utterance}', tip on the right, green = true tongue surface, "
                     "yellow = its 11 keypoints vallecula -> tip): "
                     "mel spectrogram, cyan = frames shown")
        _mel(fig.add_subplot(grid[2 * b + 1, :]), wav, sr, times, title)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)
    return out
