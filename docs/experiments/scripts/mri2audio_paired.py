"""Paired comparison of mri2audio checkpoints on the QUICK test split (docs/experiments/mri2audio.md, 2026-12-07).

    ARTICULATE_CACHE=... python docs/experiments/scripts/mri2audio_paired.py NAME=CKPT[,CKPT...] NAME=CKPT[,...] ...

Each group's checkpoints (seeds) are scored like the test pass (16 subjects x 4 crops; librosa Griffin-Lim, 32
iterations; PESQ-wb; Corr2D), each subject's values averaged over its crops and then over the group's seeds; every
group after the first is compared with the first over the 16 subjects (paired t-test and Wilcoxon signed-rank).
"""

import sys

import numpy as np
import torch
from quick_split import quick_datamodule  # beside this file
from scipy import stats

from articulate.inference.mri2audio import Mri2AudioSynthesizer
from articulate.metrics.functional import corr2d
from articulate.metrics.pesq import pesq_scores
from articulate.signal.griffin_lim import unit_mel_to_audio


def main() -> None:  # PESQ runs in worker processes, which import this file again
    torch.set_num_threads(1)
    dm = quick_datamodule("test")
    cfg = dm.mel_config

    def per_subject(path: str) -> dict[str, dict[int, float]]:
        synth = Mri2AudioSynthesizer.from_checkpoint(path)
        out: dict[str, dict[int, list[float]]] = {"corr2d": {}, "pesq": {}}
        with torch.no_grad():
            for batch in dm.test_dataloader():
                mel = synth.predict(batch["mri"])[0]
                waves = unit_mel_to_audio(mel, cfg, "librosa", 32, batch["audio"].shape[-1])
                scores = pesq_scores(list(waves), list(batch["audio"]), cfg.sr, "wb")  # the test pass's PESQ-wb
                for i, subject in enumerate(batch["subject"].tolist()):
                    out["pesq"].setdefault(subject, []).append(scores[i])
                    out["corr2d"].setdefault(subject, []).append(float(corr2d(mel[i:i + 1], batch["mel"][i:i + 1])[0]))
        return {k: {s: float(np.mean(v)) for s, v in d.items()} for k, d in out.items()}

    groups = {}
    for arg in sys.argv[1:]:
        name, paths = arg.split("=", 1)
        runs = [per_subject(p) for p in paths.split(",")]
        groups[name] = {k: {s: float(np.mean([r[k][s] for r in runs])) for s in runs[0][k]} for k in ("corr2d", "pesq")}
        seeds = " / ".join(f"{np.mean(list(r['corr2d'].values())):.3f}, {np.mean(list(r['pesq'].values())):.3f}" for r in runs)
        print(f"{name}: per seed (Corr2D, PESQ-wb) {seeds}", flush=True)
    first = next(iter(groups))
    for name, g in groups.items():
        line = f"{name:28s}" + "".join(f"  {k} {np.mean(list(v.values())):.3f}" for k, v in g.items())
        if name != first:
            for k in ("corr2d", "pesq"):
                subjects = sorted(g[k])
                a, b = np.array([g[k][s] for s in subjects]), np.array([groups[first][k][s] for s in subjects])
                line += (f" | {k} vs {first}: {np.mean(a - b):+.3f}, better on {int((a > b).sum())}/{len(a)}, "
                         f"t p {stats.ttest_rel(a, b).pvalue:.2g}, W p {stats.wilcoxon(a, b).pvalue:.2g}")
        print(line)


if __name__ == "__main__":
    main()
