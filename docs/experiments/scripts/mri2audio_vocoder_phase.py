"""Does Griffin-Lim's random start hold a harmonic F's PESQ down? (docs/experiments/mri2audio.md, 2026-12-07)

    ARTICULATE_CACHE=... python docs/experiments/scripts/mri2audio_vocoder_phase.py <checkpoint>   # ~6 min

<checkpoint>: a ``--variant harmonic`` fit of ``make train-mri2audio QUICK=1``. On its test split (16 subjects x
4 crops) F's mel (at the F0 its head reads) and the true mel (at the F0 tracked from the audio) are each turned into
waveforms three ways and scored with PESQ-wb: the test pass's Griffin-Lim (librosa, random start, 32 iterations);
the torch port of that Griffin-Lim started from the STFT phase of a band-limited pulse train at that F0; that phase
alone.
"""

import sys

import numpy as np
import torch
from quick_split import quick_datamodule  # beside this file

from articulate.inference.mri2audio import Mri2AudioSynthesizer
from articulate.metrics.pesq import pesq_scores
from articulate.signal.griffin_lim import griffin_lim, mel_to_stft, stft, unit_mel_to_audio
from articulate.signal.mel import MelConfig, unit_to_power
from articulate.signal.pitch import semitones_to_hz


def pulse_phase(f0_semitones: torch.Tensor, cfg: MelConfig, length: int, frames: int) -> torch.Tensor:
    """Unit phasors ``[B, n_freqs, frames]``: the STFT phase of harmonics up to Nyquist at F0 (read at the mel frames)."""
    hz = semitones_to_hz(f0_semitones).double().numpy()
    waves = []
    for row in hz:
        f = np.interp(np.arange(length), np.arange(frames) * cfg.hop_length, row)
        phase = 2 * np.pi * np.cumsum(f) / cfg.sr
        waves.append(sum(np.where(k * f < cfg.sr / 2, np.cos(k * phase), 0.0)
                         for k in range(1, int(cfg.sr / 2 / f.min()) + 1)))
    spec = stft(torch.tensor(np.array(waves), dtype=torch.float32), cfg)[..., :frames]
    return spec / (spec.abs() + 1e-8)


def main() -> None:  # PESQ runs in worker processes, which import this file again
    torch.set_num_threads(1)
    dm = quick_datamodule("test", pitch=True)
    cfg = dm.mel_config
    synth = Mri2AudioSynthesizer.from_checkpoint(sys.argv[1])
    synth.translator.eval()
    scores: dict[str, list[float]] = {}
    with torch.no_grad():
        for batch in dm.test_dataloader():
            x = batch["mri"]
            if synth.attention is not None:
                x, _ = synth.attention(x)
            out = synth.translator(x)
            length = batch["audio"].shape[-1]
            for name, mel, f0 in (("F's mel", out.mel, out.pitch), ("true mel", batch["mel"], batch["pitch"])):
                mag = mel_to_stft(unit_to_power(mel[:, 0].double(), cfg).float(), cfg)
                phase = pulse_phase(f0, cfg, length, mag.shape[-1])
                waves = {"Griffin-Lim, random start": unit_mel_to_audio(mel, cfg, "librosa", 32, length),
                         "Griffin-Lim, pulse-train start": griffin_lim(mag, cfg, length=length, init=phase),
                         "pulse-train phase alone": griffin_lim(mag, cfg, n_iter=0, length=length, init=phase)}
                for how, w in waves.items():
                    got = pesq_scores([np.asarray(v, np.float32) for v in w], list(batch["audio"]), cfg.sr, "wb")
                    scores.setdefault(f"{name}, {how}", []).extend(got)
    for key, values in scores.items():
        print(f"{key:45s} PESQ-wb {np.nanmean(values):.3f}")


if __name__ == "__main__":
    main()
