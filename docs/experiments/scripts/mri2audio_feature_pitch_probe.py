"""Does a harmonic F's pitch head read all the pitch its features hold? (docs/experiments/mri2audio.md, 2026-12-07)

    ARTICULATE_CACHE=... python docs/experiments/scripts/mri2audio_feature_pitch_probe.py <checkpoint> [...]   # ~4 min each

<checkpoint>: a ``--variant harmonic`` fit of ``make train-mri2audio QUICK=1``. F's features at the mel frames (before
its output layers) of two epochs of training crops are regressed onto the F0 tracked from their audio (ridge, voiced
frames); on the test split (16 subjects x 4 crops) that regression and F's own pitch head are scored on the voiced
frames: RMS error in semitones, split into each crop's mean offset and the error around it.
"""

import sys

import numpy as np
import torch
from quick_split import quick_datamodule  # beside this file

from articulate.inference.mri2audio import Mri2AudioSynthesizer


def features(synth, loader, epochs: int = 1) -> dict[str, np.ndarray]:
    """Per mel frame: F's features ``h``, its pitch head's F0, the tracked F0, voicing and the crop's index."""
    out: dict[str, list[np.ndarray]] = {"h": [], "head": [], "pitch": [], "voiced": [], "crop": []}
    crop = 0
    with torch.no_grad():
        for _ in range(epochs):
            for batch in loader:
                x = batch["mri"]
                if synth.attention is not None:
                    x, _ = synth.attention(x)
                h = synth.translator.mel_features(x)[0]
                n, frames = h.shape[0], h.shape[2]
                out["h"].append(h.transpose(1, 2).reshape(-1, h.shape[1]).numpy())
                out["head"].append(synth.translator(x).pitch.reshape(-1).numpy())
                out["pitch"].append(batch["pitch"].reshape(-1).numpy())
                out["voiced"].append(batch["voiced"].reshape(-1).numpy().astype(bool))
                out["crop"].append(np.repeat(np.arange(crop, crop + n), frames))
                crop += n
    return {k: np.concatenate(v) for k, v in out.items()}


def report(name: str, pred: np.ndarray, test: dict[str, np.ndarray]) -> None:
    v = test["voiced"]
    err, crop = pred[v] - test["pitch"][v], test["crop"][v]
    offsets = np.array([err[crop == c].mean() for c in np.unique(crop)])
    within = np.concatenate([err[crop == c] - err[crop == c].mean() for c in np.unique(crop)])
    print(f"  {name:26s} RMS {np.sqrt(np.mean(err ** 2)):.2f}  offset {np.sqrt(np.mean(offsets ** 2)):.2f}  "
          f"within {np.sqrt(np.mean(within ** 2)):.2f} semitones", flush=True)


def main() -> None:
    torch.set_num_threads(1)
    dm = quick_datamodule("fit", "test", pitch=True)
    for path in sys.argv[1:]:
        synth = Mri2AudioSynthesizer.from_checkpoint(path)
        synth.translator.eval()
        train, test = features(synth, dm.train_dataloader(), epochs=2), features(synth, dm.test_dataloader())
        print(path)
        report("pitch head", test["head"], test)
        v = train["voiced"]
        X = np.c_[train["h"][v], np.ones(int(v.sum()))]
        for lam in (0.1, 10.0, 1000.0):
            w = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ train["pitch"][v])
            report(f"ridge on F's features, {lam:g}", np.c_[test["h"], np.ones(len(test["h"]))] @ w, test)
        report("the training mean", np.full_like(test["pitch"], train["pitch"][v].mean()), test)
        print(f"  pitch head on its training crops: RMS {np.sqrt(np.mean((train['head'][v] - train['pitch'][v]) ** 2)):.2f}")


if __name__ == "__main__":
    main()
