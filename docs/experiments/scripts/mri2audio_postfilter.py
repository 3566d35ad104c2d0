"""Do postfilters of F's mel before Griffin-Lim raise PESQ? (docs/experiments/mri2audio.md, 2026-12-07)

    ARTICULATE_CACHE=... python docs/experiments/scripts/mri2audio_postfilter.py <checkpoint>   # ~5 min

<checkpoint>: a fit of ``make train-mri2audio QUICK=1``. Its mels of the validation (4 subjects x 4 crops) and test
(16 x 4) crops, each through the test pass's Griffin-Lim (librosa, 32 iterations) and PESQ-wb, unfiltered and after:
each band's temporal deviation from its mean scaled to the true mels' s.d. over validation (a global-variance
postfilter, fully or halfway), and the deviation from the mel blurred over bands (a Gaussian of s.d. 2 bands)
scaled up (spectral sharpening). Validation chooses; test is reported beside.
"""

import sys

import numpy as np
import torch
from quick_split import quick_datamodule  # beside this file

from articulate.inference.mri2audio import Mri2AudioSynthesizer
from articulate.metrics.pesq import pesq_scores
from articulate.signal.griffin_lim import unit_mel_to_audio


def predict(synth: Mri2AudioSynthesizer, loader) -> tuple[torch.Tensor, torch.Tensor, list]:
    pred, true, audio = [], [], []
    with torch.no_grad():
        for batch in loader:
            pred.append(synth.predict(batch["mri"])[0])
            true.append(batch["mel"])
            audio.extend(batch["audio"])
    return torch.cat(pred), torch.cat(true), audio


def scale_variance(mel: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    mean = mel.mean(dim=-1, keepdim=True)
    return (mean + ratio * (mel - mean)).clamp(0, 1)


def sharpen(mel: torch.Tensor, gain: float, sd_bands: float = 2.0) -> torch.Tensor:
    k = torch.arange(-6, 7, dtype=mel.dtype)
    g = torch.exp(-0.5 * (k / sd_bands) ** 2)
    b, _, n_mels, frames = mel.shape
    rows = mel[:, 0].transpose(1, 2).reshape(-1, 1, n_mels)
    smooth = torch.nn.functional.conv1d(torch.nn.functional.pad(rows, (6, 6), mode="replicate"), (g / g.sum())[None, None])
    smooth = smooth.reshape(b, frames, n_mels).transpose(1, 2)[:, None]
    return (smooth + gain * (mel - smooth)).clamp(0, 1)


def pesq_of(mel: torch.Tensor, audio: list, cfg) -> float:
    waves = unit_mel_to_audio(mel, cfg, "librosa", 32, audio[0].shape[-1])
    return float(np.nanmean(pesq_scores([np.asarray(w, np.float32) for w in waves], audio, cfg.sr, "wb")))


def main() -> None:  # PESQ runs in worker processes, which import this file again
    torch.set_num_threads(1)
    dm = quick_datamodule("validate", "test")
    cfg = dm.mel_config
    synth = Mri2AudioSynthesizer.from_checkpoint(sys.argv[1])  # in eval mode
    val_pred, val_true, val_audio = predict(synth, dm.val_dataloader())
    test_pred, _, test_audio = predict(synth, dm.test_dataloader())
    ratio = (val_true.std(-1).mean(0) / val_pred.std(-1).mean(0).clamp_min(1e-4))[..., None]  # [1, n_mels, 1]
    print(f"true / F's temporal s.d. per band on validation: {float(ratio.min()):.2f}-{float(ratio.max()):.2f}, "
          f"median {float(ratio.median()):.2f}")
    filters = {"none": lambda m: m, "s.d. scaled": lambda m: scale_variance(m, ratio),
               "s.d. scaled halfway": lambda m: scale_variance(m, ratio ** 0.5),
               "sharpened x 1.5": lambda m: sharpen(m, 1.5), "sharpened x 2": lambda m: sharpen(m, 2.0),
               "s.d. halfway, sharpened x 1.5": lambda m: sharpen(scale_variance(m, ratio ** 0.5), 1.5)}
    for name, f in filters.items():
        print(f"{name:32s} PESQ-wb validation {pesq_of(f(val_pred), val_audio, cfg):.3f}  "
              f"test {pesq_of(f(test_pred), test_audio, cfg):.3f}", flush=True)


if __name__ == "__main__":
    main()
