"""uti2contour test metrics on 2 DDP processes equal the 1-process values exactly.

This file is also a script (``python tests/test_uti2contour_ddp.py --data D --devices 2 --out r.json``):
the test runs it in a subprocess so Lightning's ``ddp`` launcher can re-execute it for rank 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_test(data: Path, devices: int, out: Path | None = None) -> dict[str, float]:
    import lightning.pytorch as pl

    from articulate.contour.baselines import EdgeTracer
    from articulate.networks.uti2contour import HeatmapUNet
    from datamodules.uti2contour import ContourDataModule, HeldOutSpeakers
    from lightning_modules.uti2contour import ContourHeatmapModule

    torch.manual_seed(0)
    net = HeatmapUNet(num_keypoints=14, base_channels=4, depth=2, norm="group")
    with torch.no_grad():
        net.head.bias.fill_(0.4)
    model = ContourHeatmapModule(net, edge_tracer=EdgeTracer())
    # batch 1: every frame goes through the network alone, so ranks compute bit-identical rows
    dm = ContourDataModule(str(data), input_size=(64, 80), batch_size=1,
                           split=HeldOutSpeakers(test_recordings=["rec00"], val_recordings=["rec01"]), pixel_mm={"rec0": 0.5})
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.test(model, datamodule=dm)
    res = {k: float(v) for k, v in model.test_results.items()}
    if out is not None and trainer.is_global_zero:
        out.write_text(json.dumps({"world_size": trainer.world_size, "results": res}))
    return res


@pytest.mark.ddp
def test_two_process_ddp_test_metrics_equal_single_process(tmp_path):
    from test_uti2contour_fit import make_dlc_set

    data = make_dlc_set(tmp_path / "ld", recordings=4, frames=5)  # 5 test frames: padded to 6 on 2 ranks
    one = run_test(data, 1)
    out = tmp_path / "two.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    proc = subprocess.run([sys.executable, str(Path(__file__)), "--data", str(data), "--devices", "2", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    assert two["world_size"] == 2
    assert set(one) == set(two["results"]) and "test/msd_px_edge_tracer" in one
    for key, value in one.items():
        assert two["results"][key] == value, key  # bit-identical, not just close


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    run_test(a.data, a.devices, a.out)
