"""articulate.optim.WarmupCosineLR against the hand-written schedule it replaced (uti2contour's LambdaLR)."""

from __future__ import annotations

import math

import pytest
import torch

from articulate.optim import WarmupCosineLR


def reference(step: int, warm: int, total: int) -> float:
    """The factor uti2contour applied before issue 28: linear warm-up, then half a cosine to 0 at ``total``;
    constant after the warm-up when the fit is not longer than it."""
    if step < warm:
        return (step + 1) / warm
    if total <= warm:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / (total - warm))))


@pytest.mark.parametrize("warm, total", [(5, 20), (1, 7), (10, 10), (100, 20), (4, -1)])
def test_warmup_cosine_follows_the_old_schedule(warm, total):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = WarmupCosineLR(opt, warmup_steps=warm, total_steps=total)
    for step in range(total + 1 if total > warm else warm + 3):  # a fit bounded by total takes steps 0..total-1
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * reference(step, warm, total), abs=1e-9), step
        opt.step()
        sched.step()
