"""What limits a harmonic F's PESQ: its envelope or its pitch? (docs/experiments/mri2audio.md, 2026-12-07)

    ARTICULATE_CACHE=... python docs/experiments/scripts/mri2audio_pesq_decomposition.py <checkpoint>   # ~3 min

<checkpoint>: a ``--variant harmonic`` fit of ``make train-mri2audio QUICK=1`` (its 160-subject phantom in the cache).
On that preset's test split (16 subjects x 4 crops) every row is scored like the test pass (librosa Griffin-Lim,
32 iterations, PESQ-wb): F's own mel; F's envelope alone; F's envelope, and the true mel smoothed over frequency
(a Gaussian of 2 bands on power: the harmonics blurred away, the true envelope), each times a sharp comb at depth
0.95 on the voiced frames, at the F0 tracked from the true audio or at F's own; the true mel with F's mel in its
lowest 20 bands, and the other way round. Then F's pitch error on the voiced frames, split per subject into the
mean offset and the error around it.
"""

import sys

import numpy as np
import torch
from quick_split import quick_datamodule  # beside this file

from articulate.inference.mri2audio import Mri2AudioSynthesizer
from articulate.metrics.functional import corr2d
from articulate.metrics.pesq import pesq_scores
from articulate.signal.griffin_lim import unit_mel_to_audio
from articulate.signal.mel import power_to_unit, unit_to_power
from articulate.signal.pitch import semitones_to_hz


def main() -> None:  # PESQ runs in worker processes, which import this file again
    torch.set_num_threads(1)
    synth = Mri2AudioSynthesizer.from_checkpoint(sys.argv[1])
    f, a = synth.translator.eval(), synth.attention.eval()
    dm = quick_datamodule("test", pitch=True)
    cfg = dm.mel_config
    span = cfg.db_max - cfg.db_min

    def pesq_wb(mel: torch.Tensor, audio: torch.Tensor) -> list[float]:
        """The test pass's PESQ-wb (the project's resampler and PESQ worker) of the mels' Griffin-Lim waveforms."""
        return pesq_scores(list(unit_mel_to_audio(mel, cfg, "librosa", 32, audio.shape[-1])), list(audio), cfg.sr, "wb")

    def with_comb(envelope: torch.Tensor, comb: torch.Tensor, voiced: torch.Tensor, depth: float = 0.95) -> torch.Tensor:
        d = depth * voiced.float()[:, None]
        return (envelope + 10 * torch.log10((d * comb + 1 - d).clamp_min(1e-6)) / span).clamp(0, 1)[:, None]

    kernel = torch.exp(-0.5 * (torch.arange(-6, 7.0) / 2.0) ** 2)
    kernel = (kernel / kernel.sum())[None, None]
    scores, errors = {}, {}
    with torch.no_grad():
        for batch in dm.test_dataloader():
            x, _ = a(batch["mri"])
            h, *_ = f.mel_features(x)
            envelope = torch.sigmoid(f.mel_out(h))
            out = f(x)
            true = batch["mel"][:, 0]
            power = unit_to_power(true, cfg).transpose(1, 2).reshape(-1, 1, true.shape[1])
            true_env = power_to_unit(torch.nn.functional.conv1d(power, kernel, padding=6).reshape(
                true.shape[0], true.shape[2], true.shape[1]).transpose(1, 2), cfg)
            tracked = f.comb(semitones_to_hz(batch["pitch"]))
            own = f.comb(semitones_to_hz(out.pitch))
            v = batch["voiced"]
            rows = {"F's mel": out.mel, "F's envelope alone": envelope[:, None],
                    "F's envelope x comb at the tracked F0": with_comb(envelope, tracked, v),
                    "F's envelope x comb at F's F0": with_comb(envelope, own, v),
                    "true envelope x comb at the tracked F0": with_comb(true_env, tracked, v),
                    "true envelope x comb at F's F0": with_comb(true_env, own, v),
                    "true mel, F's in the lowest 20 bands": torch.cat([out.mel[:, 0, :20], true[:, 20:]], 1)[:, None],
                    "F's mel, the true one in the lowest 20 bands": torch.cat([true[:, :20], out.mel[:, 0, 20:]], 1)[:, None],
                    "true mel (oracle)": batch["mel"]}
            for name, mel in rows.items():
                s = scores.setdefault(name, ([], []))
                s[0].extend(corr2d(mel, batch["mel"]).tolist())
                s[1].extend(pesq_wb(mel, batch["audio"]))
            for i, subject in enumerate(batch["subject"].tolist()):
                m = v[i].bool()
                errors.setdefault(subject, []).append((out.pitch[i] - batch["pitch"][i])[m].numpy())
    for name, (c, p) in scores.items():
        print(f"{name:48s} Corr2D {np.mean(c):.3f}  PESQ-wb {np.mean(p):.3f}")
    per = [np.concatenate(e) for e in errors.values()]
    offsets = np.array([e.mean() for e in per])
    within = np.concatenate([e - e.mean() for e in per])
    print(f"pitch error, voiced frames: RMS {np.sqrt(np.mean(np.concatenate(per) ** 2)):.2f} st; per-subject offset RMS "
          f"{np.sqrt(np.mean(offsets ** 2)):.2f}, within {np.sqrt(np.mean(within ** 2)):.2f}; offsets {np.round(np.sort(offsets), 1)}")


if __name__ == "__main__":
    main()
