"""Do the pixels carry F0's contour within a crop linearly? (docs/experiments/mri2audio.md, 2026-12-07)

    ARTICULATE_CACHE=... python docs/experiments/scripts/mri2audio_pixel_contour.py <checkpoint>   # ~4 min

<checkpoint>: a ``--variant harmonic`` fit of ``make train-mri2audio QUICK=1`` (at 77458a9 it may carry the
``pitch_pixels`` path). On the test crops, each voiced crop's F0 error (the head's reading, against the F0 tracked from
the audio) split into its offset and the error around it, and how each part of the reading correlates with the true
contour within the crop (the pixel path's, where there is one, and the rest). Then a ridge regression fitted in closed
form on two epochs of training crops: each MRI frame minus the crop's mean frame, averaged to 32 x 32 and read at the
mel frames, to F0 minus the crop's mean F0 (voiced frames), from the MRI and from A's masked frames.
"""

import sys

import numpy as np
import torch
from quick_split import quick_datamodule  # beside this file
from sklearn.linear_model import RidgeCV
from torch.nn import functional as F

from articulate.inference.mri2audio import Mri2AudioSynthesizer


def frame_changes(x: torch.Tensor, grid: int = 32, frames: int = 64) -> torch.Tensor:
    """``[B, 1, T, H, W]`` -> ``[B, frames, grid * grid]``: each frame minus the mean frame, block-averaged, at the mel frames."""
    d = x - x.mean(dim=2, keepdim=True)
    b, c, t, h, w = d.shape
    g = F.adaptive_avg_pool2d(d.transpose(1, 2).reshape(b * t, c, h, w), grid).reshape(b, t, -1).transpose(1, 2)
    return F.interpolate(g, size=frames, mode="linear", align_corners=False).transpose(1, 2)


def within(features: np.ndarray, f0: np.ndarray, voiced: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y, v in zip(features, f0, voiced):
        if v.sum() >= 4:
            xs.append(x[v] - x[v].mean(0))
            ys.append(y[v] - y[v].mean())
    return np.concatenate(xs), np.concatenate(ys)


def main() -> None:
    torch.set_num_threads(1)
    dm = quick_datamodule("fit", "test", pitch=True)
    synth = Mri2AudioSynthesizer.from_checkpoint(sys.argv[1])  # in eval mode
    pixel = getattr(synth.translator, "pixel_pitch", None) is not None
    rows, feats = [], {"train": {"MRI": [], "A's frames": [], "f0": [], "voiced": []},
                       "test": {"MRI": [], "A's frames": [], "f0": [], "voiced": []}}
    with torch.no_grad():
        for split, loader, epochs in (("train", dm.train_dataloader, 2), ("test", dm.test_dataloader, 1)):
            for _ in range(epochs):
                for batch in loader():
                    x = batch["mri"]
                    xa, _ = synth.attention(x) if synth.attention is not None else (x, None)
                    store = feats[split]
                    store["MRI"].append(frame_changes(x))
                    store["A's frames"].append(frame_changes(xa))
                    store["f0"].append(batch["pitch"])
                    store["voiced"].append(batch["voiced"].bool())
                    if split != "test":
                        continue
                    out = synth.translator(xa)
                    path = synth.translator.pixel_contour(xa) * synth.translator.pitch_scale if pixel \
                        else torch.zeros_like(out.pitch)
                    for p, q, t, v in zip(out.pitch, path, batch["pitch"], batch["voiced"].bool()):
                        if v.sum() < 4:
                            continue
                        e, tw, qw, hw = (p - t)[v], t[v] - t[v].mean(), q[v] - q[v].mean(), (p - q)[v] - (p - q)[v].mean()
                        rows.append((float(e.mean()), float(((e - e.mean()) ** 2).mean()), float(tw.std()),
                                     float(qw.std()), float(np.corrcoef(tw, qw)[0, 1]) if qw.std() > 0 else 0.0,
                                     float(np.corrcoef(tw, hw)[0, 1])))
    r = np.array(rows)
    print(f"F's F0 on the test crops: offset {np.sqrt((r[:, 0] ** 2).mean()):.2f}, within the crop "
          f"{np.sqrt(r[:, 1].mean()):.2f} semitones RMS (true contour s.d. {r[:, 2].mean():.2f}); pixel path s.d. "
          f"{r[:, 3].mean():.2f}, r with the true contour {r[:, 4].mean():.2f}; the rest's r {r[:, 5].mean():.2f}")
    cat = {s: {k: torch.cat(v).numpy() for k, v in d.items()} for s, d in feats.items()}
    for source in ("MRI", "A's frames"):
        x, y = within(cat["train"][source], cat["train"]["f0"], cat["train"]["voiced"])
        xt, yt = within(cat["test"][source], cat["test"]["f0"], cat["test"]["voiced"])
        model = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit(x, y)
        err = model.predict(xt) - yt
        print(f"ridge on {source}' changes: within-crop RMS {np.sqrt((err ** 2).mean()):.2f} semitones "
              f"(true s.d. {yt.std():.2f}; alpha {model.alpha_:.3g})")


if __name__ == "__main__":
    main()
