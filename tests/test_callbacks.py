"""MetricsCallback and MediaCallback: outputs protocol, offline W&B media files, 1 vs 2 DDP processes.

This file is also a script (``python tests/test_callbacks.py --devices 2 --out r.json``): the DDP
test runs it in a subprocess so Lightning's ``ddp`` launcher can re-execute it for rank 1.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def speech_like(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with moving formants (PESQ detects utterances in it)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 20 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    formant = 500 + 300 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6))
    x = sum(np.exp(-((k * f0 - formant) / 400.0) ** 2) * np.sin(k * phase) for k in range(1, 30))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    y = x * env
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


class TinySet(Dataset):
    """Deterministic items of every modality the outputs protocol knows, with their index."""

    def __init__(self, n: int, seconds: float = 1.0):
        g = torch.Generator().manual_seed(123)
        self.mel = torch.rand(n, 1, 16, 16, generator=g)
        self.video = torch.rand(n, 1, 4, 24, 24, generator=g)
        self.audio = torch.from_numpy(np.stack([speech_like(seconds, i) for i in range(n)]))
        self.mri = torch.rand(n, 1, 4, 16, 16, generator=g)

    def __len__(self) -> int:
        return self.mel.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"mel": self.mel[i], "video": self.video[i], "audio": self.audio[i], "mri": self.mri[i], "id": i}


def _module_class():
    import lightning.pytorch as pl

    class TinyModule(pl.LightningModule):
        """Predictions are a fixed distortion of the targets, different per element (so padding matters)."""

        direction = "mri2audio"

        def __init__(self, send_index: bool = True, valid_even: bool = False):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.7))
            self.send_index = send_index
            self.valid_even = valid_even  # mark odd ids and id 0 invalid: on 2 ranks, rank 1 keeps nothing

        def training_step(self, batch, batch_idx):
            return (self.w * batch["mel"]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)  # lr 0: values stay deterministic

        def validation_step(self, batch, batch_idx):
            idx = batch["id"].to(batch["mel"].dtype)
            k = (1.0 + idx)[:, None, None, None]
            mel_pred = torch.sigmoid(3 * self.w * batch["mel"] * torch.cos(k) + 0.1 * k)
            video_pred = (batch["video"] * self.w + 0.05 * k[..., None]).clamp(0, 1)
            noise = torch.sin(torch.arange(batch["audio"].shape[1], device=self.device)[None] * (0.3 + 0.1 * idx[:, None]))
            out = {
                "mel_pred": mel_pred, "mel_target": batch["mel"],
                "audio_pred": batch["audio"] + 0.02 * (1 + idx[:, None]) * noise, "audio_target": batch["audio"],
                "sample_rate": SR, "attention": batch["mri"][:, 0] * self.w, "mri": batch["mri"],
                "video_pred": video_pred, "video_target": batch["video"], "fps": 30.0,
            }
            if self.send_index:
                out["sample_index"] = batch["id"]
            if self.valid_even:
                out["valid"] = (batch["id"] % 2 == 0) & (batch["id"] > 0)
            return out

        def test_step(self, batch, batch_idx):
            return self.validation_step(batch, batch_idx)

    return TinyModule


class TinyExtractor(nn.Module):
    """A fixed random conv feature map standing in for Inception/I3D in the DDP test (any rank gets the same)."""

    dim = 6
    comparable = True
    label = "tiny test extractor"

    def __init__(self, video: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.video = video
        self.weight = nn.Parameter(torch.randn(6, 1, 3, 3, generator=g), requires_grad=False)

    def forward(self, x):
        if self.video:  # [B, 1, T, H, W] -> mean over time, then the 2D map
            x = x.mean(dim=2)
        y = torch.nn.functional.conv2d(x.float(), self.weight)
        return torch.cat([y.mean(dim=(2, 3))[:, :3], y.std(dim=(2, 3))[:, 3:]], 1)


METRIC_NAMES = ["corr2d", "rmse", "psnr", "pesq", "lpips", "fid", "fvd"]


def make_callbacks():
    from callbacks.metrics import MetricsCallback

    options = {"lpips": {"random_init": True}, "fid": {"extractor": TinyExtractor()},
               "fvd": {"extractor": TinyExtractor(video=True), "clip_frames": None},
               "pesq": {"num_workers": 1}}
    return MetricsCallback(val_metrics=METRIC_NAMES, options=options)


def run_validate(devices: int, n: int, send_index: bool, out: Path | None = None, valid_even: bool = False) -> dict:
    import lightning.pytorch as pl

    torch.manual_seed(0)  # LPIPS random trunk: identical on every rank and in every run
    cb = make_callbacks()
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb])
    model = _module_class()(send_index=send_index, valid_even=valid_even)
    # One intra-op thread in every process: float32 conv sums (LPIPS) then run in the same order
    # in this process and in the DDP workers, so equality can be exact.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.validate(model, DataLoader(TinySet(n), batch_size=2, shuffle=False))
    finally:
        torch.set_num_threads(threads)
    res = dict(cb.results["val"])
    if out is not None and trainer.is_global_zero:
        out.write_text(json.dumps({"results": res, "world_size": trainer.world_size}))
    return res


# ---------------------------------------------------------------------------------------- tests
def test_metrics_callback_single_process_matches_direct_metrics():
    """The callback's logged values equal the metric functions applied to the whole set directly."""
    from articulate.metrics.functional import corr2d, psnr, rmse
    from articulate.metrics.pesq import pesq_batch

    n = 5
    res = run_validate(1, n, send_index=True)
    ds = TinySet(n)
    batch = {k: torch.stack([torch.as_tensor(ds[i][k]) for i in range(n)]) for k in ("mel", "video", "audio", "mri", "id")}
    with torch.no_grad():
        out = _module_class()().validation_step(batch, 0)
    assert res["val/corr2d"] == pytest.approx(float(corr2d(out["mel_pred"].double(), out["mel_target"].double()).mean()), abs=1e-12)
    assert res["val/rmse"] == pytest.approx(float(rmse(out["video_pred"], out["video_target"], pixel_range="unit").double().mean()), rel=1e-6)
    assert res["val/psnr"] == pytest.approx(float(psnr(out["video_pred"], out["video_target"], pixel_range="unit").double().mean()), rel=1e-6)
    scores, errors = pesq_batch(out["audio_target"], out["audio_pred"], SR, num_workers=1)
    assert not any(errors)
    assert res["val/pesq"] == pytest.approx(float(np.mean(scores)), abs=1e-9)
    assert res["val/pesq_failed"] == 0.0
    # random-init LPIPS is labelled in the key itself
    assert "val/lpips_NOT_COMPARABLE" in res and "val/lpips" not in res
    assert math.isfinite(res["val/fid"]) and math.isfinite(res["val/fvd"])


def test_metrics_callback_missing_outputs_is_a_clear_error():
    import lightning.pytorch as pl

    from callbacks.metrics import MetricsCallback

    class NoAudio(_module_class()):
        def validation_step(self, batch, batch_idx):
            out = super().validation_step(batch, batch_idx)
            del out["audio_pred"]
            return out

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[MetricsCallback(val_metrics=["pesq"])])
    with pytest.raises(KeyError, match="pesq.*audio_pred"):
        trainer.validate(NoAudio(), DataLoader(TinySet(2), batch_size=2))


def test_metrics_callback_test_stage_logs_its_own_metric_list():
    import lightning.pytorch as pl

    from articulate.metrics.functional import rmse
    from callbacks.metrics import MetricsCallback

    cb = MetricsCallback(val_metrics=["corr2d"], test_metrics=["corr2d", "rmse"])
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb])
    model = _module_class()()
    trainer.test(model, DataLoader(TinySet(3), batch_size=2))
    assert set(cb.results["test"]) == {"test/corr2d", "test/rmse"} and cb.results["val"] == {}
    ds = TinySet(3)
    batch = {k: torch.stack([torch.as_tensor(ds[i][k]) for i in range(3)]) for k in ("mel", "video", "audio", "mri", "id")}
    with torch.no_grad():
        out = model.validation_step(batch, 0)
    expect = float(rmse(out["video_pred"].double(), out["video_target"].double(), pixel_range="unit").mean())
    assert cb.results["test"]["test/rmse"] == pytest.approx(expect, rel=1e-12)
    assert float(trainer.callback_metrics["test/rmse"]) == pytest.approx(expect, rel=1e-6)


def test_metrics_callback_rejects_unknown_metric_names():
    from callbacks.metrics import MetricsCallback

    with pytest.raises(ValueError, match="unknown metric 'ssim'"):
        MetricsCallback(val_metrics=["corr2d", "ssim"])


@pytest.mark.slow
def test_offline_wandb_fit_writes_audio_image_video_and_table_media(tmp_path, monkeypatch):
    """A short fit with both callbacks and an offline W&B logger leaves media files in the run folder."""
    import lightning.pytorch as pl

    from articulate.loggers import ArticulateWandbLogger
    from callbacks.media import MediaCallback
    from callbacks.metrics import MetricsCallback

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    logger = ArticulateWandbLogger(project="articulate-test", save_dir=str(tmp_path / "logs"), offline=True)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=2, logger=logger,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0,
                         callbacks=[MetricsCallback(val_metrics=["corr2d", "rmse", "psnr"]), MediaCallback(num_samples=2)])
    ds = TinySet(4)
    trainer.fit(_module_class()(), DataLoader(ds, batch_size=2), DataLoader(ds, batch_size=2))
    logger.experiment.finish()
    runs = list((tmp_path / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    media = runs[0] / "files" / "media"
    files = {p.suffix for p in media.rglob("*") if p.is_file()}
    assert {".png", ".wav", ".mp4"} <= files, sorted(str(p.relative_to(media)) for p in media.rglob("*"))
    assert any(p.name.endswith(".table.json") for p in media.rglob("*")), "metrics table missing"
    # 2 samples x (spectrogram + attention) images, 2 x (target + synthesized) audio, 2 videos
    assert len(list(media.rglob("*.png"))) == 4
    assert len(list(media.rglob("*.wav"))) == 4
    assert len(list(media.rglob("*.mp4"))) == 2
    # the logged video is the side-by-side clip: real | generated, 4 frames of 24 x (24 + 2 + 24), enlarged x8
    # (nearest neighbour) to the 192-row minimum
    from articulate.readers.video import read_video

    frames, fps = read_video(next(media.rglob("*.mp4")))
    assert frames.shape == (4, 192, 400) and fps == pytest.approx(30.0)


def test_media_callback_is_silent_without_wandb(tmp_path):
    """CSV logging: the media callback does nothing (no error, no files), metrics still logged."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from callbacks.media import MediaCallback
    from callbacks.metrics import MetricsCallback

    media_cb = MediaCallback()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=1,
                         logger=CSVLogger(str(tmp_path)), enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[MetricsCallback(val_metrics=["corr2d"]), media_cb])
    ds = TinySet(2)
    trainer.fit(_module_class()(), DataLoader(ds, batch_size=2), DataLoader(ds, batch_size=2))
    assert media_cb._buffer == [] and media_cb._scratch is None
    assert "val/corr2d" in trainer.callback_metrics
    assert not list(tmp_path.rglob("*.mp4"))


def test_media_panels_shapes_and_orientation():
    from callbacks.media import attention_panel, side_by_side_video, spectrogram_panel

    t = np.zeros((16, 10), np.float32)
    t[0] = 1.0  # lowest mel band
    panel = spectrogram_panel(t, t)
    assert panel.shape == (16, 3 * 10 + 2 * 2, 3) and panel.dtype == np.uint8
    assert panel[-1, 0].sum() > panel[0, 0].sum()  # low frequencies drawn at the bottom (bright in magma)
    att = attention_panel(np.random.rand(26, 8, 8), np.random.rand(26, 8, 8), max_frames=5)
    assert att.shape == (8 + 2 + 8, 5 * 8 + 4 * 2, 3)
    vid = side_by_side_video(np.ones((3, 6, 5)), np.zeros((3, 6, 5)), min_height=1)
    assert vid.shape == (3, 6, 12) and vid[0, 0, 0] == 255 and vid[0, 0, -1] == 0
    big = side_by_side_video(np.ones((3, 6, 5)), np.zeros((3, 6, 5)), min_height=20)  # x4 nearest neighbour
    assert big.shape == (3, 24, 48) and (big[:, ::4, ::4] == vid).all()


def test_callbacks_are_configurable_from_yaml_class_paths():
    """The LightningCLI way: trainer.callbacks entries with class_path/init_args parse and instantiate."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import Callback

    from callbacks.media import MediaCallback
    from callbacks.metrics import MetricsCallback

    parser = ArgumentParser()
    parser.add_argument("--callbacks", type=list[Callback])
    cfg = parser.parse_string("""
callbacks:
  - class_path: callbacks.metrics.MetricsCallback
    init_args:
      val_metrics: [corr2d, pesq]
      options: {pesq: {mode: nb}}
      inputs: {corr2d: [video_pred, video_target]}
  - class_path: callbacks.media.MediaCallback
    init_args: {num_samples: 2, every_n_epochs: 5}
""")
    metrics_cb, media_cb = parser.instantiate_classes(cfg).callbacks
    assert isinstance(metrics_cb, MetricsCallback) and isinstance(media_cb, MediaCallback)
    assert metrics_cb.test_metrics == ["corr2d", "pesq"] and metrics_cb.options == {"pesq": {"mode": "nb"}}
    assert metrics_cb.inputs == {"corr2d": ("video_pred", "video_target")}
    assert media_cb.every_n_epochs == 5


def _run_script(tmp_path: Path, devices: int, n: int, index: bool, valid_even: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", "WANDB_MODE": "disabled"}
    out = tmp_path / f"d{devices}-i{int(index)}-v{int(valid_even)}.json"
    cmd = [sys.executable, str(Path(__file__)), "--devices", str(devices), "--n", str(n), "--index", str(int(index)),
           "--out", str(out)] + (["--valid-even"] if valid_even else [])
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["world_size"] == devices
    return data["results"]


@pytest.mark.ddp
def test_two_process_ddp_validation_equals_single_process(tmp_path):
    """7 samples on 2 ranks: DistributedSampler pads to 8 (sample 0 twice). With sample_index the
    2-process values equal the 1-process values exactly.

    ARTICULATE_DDP_EXTENDED=1 adds two runs: without sample_index (biased; the in-process padding
    simulation in test_metrics.py checks that bias on every run), and with a ``valid`` mask that
    leaves rank 1 without a single row (torchmetrics' empty-rank sync path)."""
    n = 7
    one = run_validate(1, n, send_index=True)  # the 1-process reference, in this process
    two = _run_script(tmp_path, 2, n, index=True)
    extended = bool(os.environ.get("ARTICULATE_DDP_EXTENDED"))
    naive = _run_script(tmp_path, 2, n, index=False) if extended else {}
    print(f"\nDDP check (n={n}):")
    for key in one:
        print(f"  {key:<28} 1 proc {one[key]!r:<24} 2 procs {two[key]!r:<24} 2 procs w/o sample_index {naive.get(key)!r}")
    assert set(one) == set(two)
    for key in one:
        assert two[key] == one[key], key  # bit-identical, not just close
    if extended:
        assert naive["val/corr2d"] != one["val/corr2d"]  # the bias de-duplication removes is real
        masked_one = run_validate(1, n, send_index=True, valid_even=True)
        masked_two = _run_script(tmp_path, 2, n, index=True, valid_even=True)
        print("  valid mask, rank 1 empty:", masked_two)
        assert masked_two == masked_one


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--n", type=int, default=7)
    parser.add_argument("--index", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--valid-even", action="store_true")
    a = parser.parse_args()
    torch.set_num_threads(1)
    run_validate(a.devices, a.n, bool(a.index), a.out, valid_even=a.valid_even)


def test_random_init_auto_falls_back_to_labelled_stand_in(monkeypatch, tmp_path):
    """`random_init: auto` (the out-of-the-box configs) never fails offline, and says so in the key."""
    import torch

    from callbacks.metrics import build_metric, metric_key

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    metric = build_metric("lpips", {"random_init": "auto"})
    assert metric_key("val", "lpips", metric) == "val/lpips_NOT_COMPARABLE"
    x = torch.rand(2, 1, 3, 32, 32)
    metric.update(x, x, sample_index=torch.arange(2))
    assert float(metric.compute()) == pytest.approx(0.0, abs=1e-6)


def test_progress_lines_count_batches_for_a_module_that_steps_several_optimizers(tmp_path):
    """A manual-optimization module with two optimizers, bounded by epochs: Lightning's global_step counts both
    optimizers' steps (6 after 3 batches) while the total counts batches (3); the lines count batches."""
    import io

    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks.progress import ProgressLines

    class TwoOptimizers(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.a, self.b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            for net, opt in zip((self.a, self.b), self.optimizers()):
                loss = net(batch[0]).pow(2).mean()
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.a.parameters(), lr=0.1), torch.optim.SGD(self.b.parameters(), lr=0.1)

    out = io.StringIO()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, callbacks=[ProgressLines(every_s=0, stream=out)],
                         default_root_dir=str(tmp_path))
    trainer.fit(TwoOptimizers(), DataLoader(TensorDataset(torch.randn(6, 2)), batch_size=2))
    assert trainer.global_step == 6
    lines = out.getvalue().splitlines()
    assert lines and lines[-1].startswith("articulate fit: 3/3 batches, epoch 0"), lines


def test_torch_threads_holds_for_the_run_and_gives_the_count_back(tmp_path):
    """``articulate train wav2uti`` trains its contour tracker (one thread, configs/uti2contour/quick.yaml) in the
    same process before the wav2uti fit: the fit must get the process's thread count back, not one thread."""
    import lightning.pytorch as pl
    from torch.utils.data import TensorDataset

    from callbacks.threads import TorchThreads

    seen = []

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            seen.append(torch.get_num_threads())
            return self.lin(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    try:
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                             enable_model_summary=False, enable_progress_bar=False,
                             callbacks=[TorchThreads(wanted)], default_root_dir=str(tmp_path))
        trainer.fit(Probe(), DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
        assert seen == [wanted, wanted]
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)
