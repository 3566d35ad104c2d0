"""Figures of a reproduction: metric bars with error bars, example spectrograms/waveforms/videos."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from articulate.utils.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)


def bar_chart(table: Sequence[dict[str, Any]], metrics: Sequence[tuple[str, str]], path: Path, title: str = "") -> None:
    """One panel per metric: a bar per table row, error bar = the row's std."""
    plt = _plt()
    def number(v: Any) -> float:  # a missing or stated cell ("0 (trivial)") draws no bar
        return float(v) if isinstance(v, (int, float)) and np.isfinite(v) else float("nan")

    metrics = [(k, t) for k, t in metrics if any(np.isfinite(number(r.get(f"{k}_mean"))) for r in table)]
    if not metrics:
        return
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    labels = [r["model"] for r in table]
    for ax, (key, title_m) in zip(axes[0], metrics):
        means = [number(r.get(f"{key}_mean")) for r in table]
        stds = [number(r.get(f"{key}_std")) if np.isfinite(number(r.get(f"{key}_mean"))) else 0.0 for r in table]
        ax.bar(range(len(labels)), means, yerr=stds, capsize=4, color="#4c72b0")
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_title(title_m, fontsize=10)
    fig.suptitle(title)
    _save(fig, path)


def _examples(out_dir: Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    found = []
    for p in sorted((Path(out_dir) / "runs").glob("*.examples.npz")):
        with np.load(p) as z:
            found.append((p.name.split("_fold")[0], {k: z[k] for k in z.files}))
    return found


def example_figures(out_dir: Path, experiment: str) -> list[Path]:
    examples = _examples(out_dir)
    if not examples:
        return []
    plt = _plt()
    written: list[Path] = []
    if experiment == "mri2audio":
        n = len(examples)
        fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.0), squeeze=False)
        first = examples[0][1]
        axes[0, 0].imshow(first["mel_target"], origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
        axes[0, 0].set_title("target mel", fontsize=9)
        t = np.arange(len(first["audio_target"])) / float(first["sample_rate"])
        axes[1, 0].plot(t, first["audio_target"], lw=0.4, color="k")
        axes[1, 0].set_title("target waveform", fontsize=9)
        for j, (name, ex) in enumerate(examples, start=1):
            axes[0, j].imshow(ex["mel_pred"], origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
            axes[0, j].set_title(name, fontsize=9)
            t = np.arange(len(ex["audio_pred"])) / float(ex["sample_rate"])
            axes[1, j].plot(t, ex["audio_pred"], lw=0.4, color="#c44e52")
            axes[1, j].set_ylim(-1, 1)
        for ax in axes.flat:
            ax.tick_params(labelsize=6)
        path = Path(out_dir) / "examples.png"
        _save(fig, path)
        written.append(path)
        from articulate.readers.audio import write_audio

        audio_dir = Path(out_dir) / "examples"
        write_audio(audio_dir / "target.wav", first["audio_target"], int(first["sample_rate"]))
        for name, ex in examples:
            write_audio(audio_dir / f"{name}.wav", ex["audio_pred"], int(ex["sample_rate"]))
    else:
        n = len(examples)
        target = examples[0][1]["video_target"]
        steps = np.linspace(0, target.shape[0] - 1, 4).round().astype(int)
        fig, axes = plt.subplots(n + 1, len(steps), figsize=(2.0 * len(steps), 2.0 * (n + 1)), squeeze=False)
        rows = [("target", target)] + [(name, ex["video_pred"]) for name, ex in examples]
        for i, (name, video) in enumerate(rows):
            for j, t in enumerate(steps):
                t = min(int(t), video.shape[0] - 1)
                axes[i, j].imshow(video[t], cmap="gray", vmin=-1, vmax=1)
                axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
                if j == 0:
                    axes[i, j].set_ylabel(name, fontsize=7)
                if i == 0:
                    axes[i, j].set_title(f"frame {t}", fontsize=8)
        path = Path(out_dir) / "examples.png"
        _save(fig, path)
        written.append(path)
        from articulate.readers.video import write_video

        for name, ex in examples:
            pred, tgt = ex["video_pred"], ex["video_target"]
            size = max(pred.shape[-1], tgt.shape[-1])
            side = np.concatenate([_resize(tgt, size), _resize(pred, size)], axis=-1)
            frames = np.clip((side + 1.0) * 127.5, 0, 255).astype(np.uint8)
            write_video(Path(out_dir) / "examples" / f"{name}.mp4", frames, fps=60.0)
    return written


def _resize(video: np.ndarray, size: int) -> np.ndarray:
    if video.shape[-1] == size:
        return video
    import torch
    import torch.nn.functional as F

    v = torch.from_numpy(np.ascontiguousarray(video, dtype=np.float32))[:, None]
    return F.interpolate(v, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()
