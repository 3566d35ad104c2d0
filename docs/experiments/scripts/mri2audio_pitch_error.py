"""PESQ-wb of the phantom's recordings re-rendered with a known F0 error (docs/experiments/mri2audio.md, 2026-12-07).

    python docs/experiments/scripts/mri2audio_pitch_error.py   # ~15 min on one core

The 40-subject mri2audio phantom cohort (seed 0), 10 recordings x 2 evaluation crops, K = 4 draws per setting: the
true F0 times 2^(e/12), e a smooth error (Gaussian noise smoothed over 0.1 s, scaled to ``sd`` semitones) plus a
constant ``offset`` of +-1 semitone (a wrong speaker mean), fresh source noise; scored as the module scores a
prediction (the DataModule's unit mel, Griffin-Lim, PESQ-wb against the true crop), each draw and the mean of the K
mels (what an L2-trained model predicts when it knows F0 only that well).
"""

import numpy as np
import torch

from articulate.metrics.pesq import pesq_batch
from articulate.phantom import ceilings as C
from articulate.phantom.cohort import _mri_subject_words, _options
from articulate.signal.crops import crop_starts
from articulate.signal.griffin_lim import unit_mel_to_audio
from articulate.signal.mel import MelConfig, MelSpectrogram, power_to_unit

opts = _options("mri2audio", 40, {})
words, cfg = _mri_subject_words(opts), MelConfig()
mel_fn, sr = MelSpectrogram(cfg), int(opts["sr"])


def mels(audio: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return power_to_unit(mel_fn(audio), cfg)[:, None].float()


def smooth_error(rng: np.random.Generator, t: np.ndarray, sd: float, tau: float = 0.1) -> np.ndarray:
    k = int(tau / (t[1] - t[0]))
    s = np.convolve(rng.standard_normal(len(t)), np.exp(-0.5 * (np.arange(-3 * k, 3 * k + 1) / k) ** 2), "same")
    return s / s.std() * sd


scores: dict[tuple, list[float]] = {}
for si in C.recording_subjects(40, 10):
    rec = C.PhantomRecording(0, si, words[si], opts)
    starts = crop_starts(rec.n, C.CROP_SAMPLES, 2)
    audio = C._crops(rec.render(), starts, sr)
    for sd in (0.0, 0.5, 1.0, 2.0):
        for offset in (0.0, 1.0):
            drawn = []
            for k in range(4):
                rng = np.random.default_rng([si, k, int(sd * 10), int(offset * 10)])
                e = (smooth_error(rng, rec.traj.t, sd) if sd else 0.0) + offset * rng.choice([-1, 1])
                drawn.append(mels(C._crops(rec.render(rec.traj.f0 * 2 ** (e / 12), (99, k)), starts, sr)))
            for name, ms in (("each", drawn), ("mean", [torch.stack(drawn).mean(0)])):
                for m in ms:
                    wav = unit_mel_to_audio(m, cfg, C.GRIFFIN_LIM, C.GRIFFIN_LIM_ITERS, length=C.CROP_SAMPLES)
                    p = pesq_batch(audio, wav, sr, C.PESQ_MODE, num_workers=1)[0]
                    scores.setdefault((sd, offset, name), []).extend(x for x in p if np.isfinite(x))
    print(rec.id, flush=True)
print("| F0 error sd (semitones) | offset | PESQ-wb each draw | mean of the K mels |\n|---|---|---|---|")
for sd in (0.0, 0.5, 1.0, 2.0):
    for offset in (0.0, 1.0):
        print(f"| {sd} | {offset} | {np.mean(scores[(sd, offset, 'each')]):.2f} | {np.mean(scores[(sd, offset, 'mean')]):.2f} |")
