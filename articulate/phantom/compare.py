"""A phantom-vs-real sheet: ultrasound frames of a phantom cohort next to real recordings, with the
frame-change and F0 figures of :mod:`articulate.phantom.realism`, and F0 contours.

Real sources: ultrasound videos (.avi/.mp4/...), raw ``.ult`` recordings (with ``.param`` or AAA
``US.txt``; their ``.wav`` gives the F0 contour when it holds speech) and plain ``.wav`` files
(F0 only). Every fan is shown at the same size with the probe at the bottom, as displayed clinically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from articulate.errors import InputError

SHOW_PX = 128


def _phantom_rows(root: Path, n_rows: int) -> list[dict]:
    """Up to ``n_rows`` phantom ultrasound recordings (sentences first) as sheet rows."""
    from articulate.phantom import realism
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.ultrasound import read_param, read_ult

    recs = [r for r in index_dataset(root) if r.kind == "ultrasound"]
    recs.sort(key=lambda r: (r.extra.get("task") != "sentence", r.id))
    rows = []
    for r in recs[:n_rows]:
        params = read_param(r.param)
        scan = read_ult(r.image, params)
        frames, _ = realism.scan_fan_frames(scan, params, SHOW_PX)
        rows.append({"name": f"phantom {r.id} '{r.utterance}'", "frames": realism.resample_frames(
            frames, params.fps, realism.FPS), "change": _changes(scan, params), "speech": r.audio})
    return rows


def _changes(scan: np.ndarray, params) -> dict[str, dict[int, float]]:
    from articulate.phantom import realism

    out = {}
    for label, over in (("direct", 1), ("area", 4)):
        frames, mask = realism.scan_fan_frames(scan, params, realism.SIZE, over)
        out[label] = realism.frame_change(frames, mask, params.fps)
    return out


def _real_row(path: Path) -> dict:
    from articulate.phantom import realism
    from articulate.readers.ultrasound import read_param, read_ult, utterance_files
    from articulate.readers.video import VIDEO_SUFFIXES

    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames, _, fps = realism.video_fan_frames(path, SHOW_PX)
        small, mask, _ = realism.video_fan_frames(path, realism.SIZE)
        change = {"area": realism.frame_change(small, mask, fps)}
        return {"name": f"real {path.name}", "frames": realism.resample_frames(frames, fps, realism.FPS),
                "change": change, "speech": path, "flip": False}
    files = utterance_files(path)
    if files["ult"] is None or files["param"] is None:
        raise InputError(path, "not an ultrasound recording (a video, or a .ult with its .param / US.txt)")
    params = read_param(files["param"])
    scan = read_ult(files["ult"], params)
    frames, _ = realism.scan_fan_frames(scan, params, SHOW_PX)
    return {"name": f"real {files['ult'].name}", "frames": realism.resample_frames(frames, params.fps, realism.FPS),
            "change": _changes(scan, params), "speech": files["wav"]}


def _label(row: dict) -> str:
    parts = [f"{k}-64px change {v[1]:.1f} / {v[6]:.1f} (x{v[6] / max(v[1], 1e-9):.2f})"
             for k, v in row["change"].items()]
    return f"{row['name']}: " + ", ".join(parts)


def realism_sheet(root: str | Path, real: list[str | Path], out: str | Path, n_frames: int = 8,
                  phantom_rows: int = 2) -> Path:
    """Write the PNG: rows of phantom and real ultrasound frames (1/6 s apart), then F0 contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from articulate.phantom import realism
    from articulate.utils.atomic import atomic_path

    root = Path(root)
    real = [Path(p) for p in real]
    for p in real:
        if not p.exists():
            raise InputError(p, "file not found")
    rows = _phantom_rows(root, phantom_rows) if (root / "manifest.csv").is_file() else []
    speech_only = [p for p in real if p.suffix.lower() == ".wav"]
    rows += [_real_row(p) for p in real if p not in speech_only]
    if not rows and not speech_only:
        raise InputError(root, "nothing to show: no phantom ultrasound cohort here and no real recordings given")
    voices = [(row["name"].split(":")[0], row["speech"]) for row in rows if row.get("speech") is not None]
    voices += [(f"real {p.name}", p) for p in speech_only]

    fig = plt.figure(figsize=(2.0 * n_frames, 2.2 * len(rows) + 3.2))
    grid = fig.add_gridspec(len(rows) + 1, n_frames, height_ratios=[1.0] * len(rows) + [1.4], hspace=0.35)
    for i, row in enumerate(rows):
        frames = row["frames"]
        start = max(0, len(frames) // 2 - (n_frames * 10) // 2)
        idx = [min(start + 10 * j, len(frames) - 1) for j in range(n_frames)]
        for j, k in enumerate(idx):
            ax = fig.add_subplot(grid[i, j])
            img = frames[k][::-1] if row.get("flip", True) else frames[k]  # probe at the bottom
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{k / realism.FPS:.2f} s", fontsize=7)
            ax.axis("off")
        fig.text(0.5, grid[i, 0].get_position(fig).y1 + 0.012, _label(row), ha="center", fontsize=8)
    ax = fig.add_subplot(grid[len(rows), :])
    for name, path in voices:
        try:
            wav = realism.read_speech(path)
        except InputError:
            continue
        f0 = realism.f0_track(wav, 16000)
        st = 12.0 * np.log2(f0 / np.nanmedian(f0)) if np.isfinite(f0).any() else f0
        stats = realism.semitones(f0)
        t = np.arange(len(f0)) * 0.01
        ax.plot(t, st, lw=1.0, label=f"{name} (median {np.nanmedian(f0):.0f} Hz, s.d. {np.std(stats):.1f} st)"
                if stats.size > 1 else name)
    ax.set_ylim(-15, 15)  # a stray octave error should not squash the contours
    ax.set_xlabel("time (s)")
    ax.set_ylabel("F0 (semitones re median)")
    ax.set_title("F0 (pYIN, voiced frames)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)
    return out
