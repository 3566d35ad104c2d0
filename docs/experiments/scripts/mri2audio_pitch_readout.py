"""How well F0 can be read off the phantom's MRI (docs/experiments/mri2audio.md, 2026-12-07).

    python docs/experiments/scripts/mri2audio_pitch_readout.py <cohort folder>   # ~20 min on one core

<cohort folder>: the QUICK preset's 160-subject mri2audio phantom (``$ARTICULATE_CACHE/phantom/mri2audio-*``, written
by ``make train-mri2audio QUICK=1``). F0 at each MRI frame (semitones re 100 Hz, from the cohort's ``*.traj.npz``)
from the 64 x 64 frames (2 x 2 mean of the 128-px images): the first 128 subjects train, the last 32 test, voiced
frames scored. A ridge probe on the pixels (absolute F0; and within each recording, its mean frame and mean F0
removed), then a small CNN (a 2D encoder per frame, 1-D convolutions over the 26 frames; 1,500 steps of 16
recordings, shifts of +-2 px): test RMS error split into each recording's mean offset and the error around it.
"""

import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from torch import nn

torch.manual_seed(0)
torch.set_num_threads(1)
X, Y, V = [], [], []
for d in sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir()):
    im = np.moveaxis(np.asarray(nib.load(next(d.glob("*.nii.gz"))).dataobj), -1, 0).astype(np.float32)
    im = im.reshape(im.shape[0], 64, 2, 64, 2).mean((2, 4))
    z = np.load(next(d.glob("*.traj.npz")))
    ft = z["frame_times"]
    X.append((im - im.mean()) / (im.std() + 1e-6))
    Y.append(12 * np.log2(np.interp(ft, z["t"], z["f0"]) / 100))
    V.append(np.interp(ft, z["t"], z["src_voicing"]) > 0.5)
X, Y, V = np.stack(X), np.stack(Y), np.stack(V)
n, T = X.shape[:2]
train = np.arange(n) < 128


def report(name: str, err: np.ndarray) -> None:
    """RMS error over the test recordings' voiced frames; its per-recording mean (offset) and the rest."""
    v = V[~train]
    rows = [(e[m].mean(), e[m] - e[m].mean()) for e, m in zip(err, v) if m.any()]
    offset = np.sqrt(np.mean([o ** 2 for o, _ in rows]))
    within = np.sqrt(np.mean(np.concatenate([w for _, w in rows]) ** 2))
    print(f"{name}: RMS {np.sqrt(np.mean(err[v] ** 2)):.2f} st (offset {offset:.2f}, within {within:.2f}); "
          f"true F0 s.d. {Y[~train][v].std():.2f}", flush=True)


flat = X.reshape(n, T, -1)
for name, x, y in (("ridge, absolute", flat, Y),
                   ("ridge, within each recording", flat - flat.mean(1, keepdims=True), Y - Y.mean(1, keepdims=True))):
    m = RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(x[train][V[train]], y[train][V[train]])
    report(name, m.predict(x[~train].reshape(-1, x.shape[-1])).reshape(-1, T) - y[~train])


class PitchNet(nn.Module):
    def __init__(self, c: int = 24):
        super().__init__()
        conv = [nn.Conv2d(1, c, 3, 2, 1), nn.GELU(), nn.Conv2d(c, 2 * c, 3, 2, 1), nn.GELU(),
                nn.Conv2d(2 * c, 2 * c, 3, 2, 1), nn.GELU(), nn.Conv2d(2 * c, 4 * c, 3, 2, 1), nn.GELU()]
        self.frame = nn.Sequential(*conv, nn.Flatten(), nn.Linear(4 * c * 16, 128))
        self.time = nn.Sequential(nn.Conv1d(128, 128, 5, padding=2), nn.GELU(), nn.Conv1d(128, 128, 5, padding=2),
                                  nn.GELU(), nn.Conv1d(128, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        return self.time(self.frame(x.reshape(B * T, 1, 64, 64)).reshape(B, T, -1).transpose(1, 2))[:, 0]


Xt, Yt, Vt = torch.tensor(X), torch.tensor(Y, dtype=torch.float32), torch.tensor(V)
mean, sd = Yt[Vt].mean(), Yt[Vt].std()
net = PitchNet()
opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
idx_train = torch.nonzero(torch.tensor(train))[:, 0]
started = time.time()
for _ in range(1500):
    b = idx_train[torch.randint(0, len(idx_train), (16,))]
    shift = torch.randint(-2, 3, (2,))
    x = torch.roll(Xt[b], (int(shift[0]), int(shift[1])), (2, 3))
    loss = ((net(x) - (Yt[b] - mean) / sd) ** 2)[Vt[b]].mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    pred = (net(Xt[~torch.tensor(train)]) * sd + mean).numpy()
report(f"CNN, 1,500 steps ({time.time() - started:.0f} s)", pred - Y[~train])
