"""uti2contour end to end: a tiny fit through LightningCLI on generated DLC-style data, the checkpoint
round trip through ContourTracker, track-contours on video / images / .ult, bad input, the DataModule's
speaker-disjoint split and its phantom default."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from articulate.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["vallecula", "tongueRoot1", "tongueRoot2", "tongueBody1", "tongueBody2", "tongueDorsum1", "tongueDorsum2",
         "tongueBlade1", "tongueBlade2", "tongueTip1", "tongueTip2", "hyoid", "mandible", "shortTendon"]


def synthetic_frame(rng: np.random.Generator, h: int = 60, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A fan-like speckled frame with a bright arc (the 'tongue') and its 14 keypoints (x, y)."""
    yy, xx = np.mgrid[0:h, 0:w]
    apex = (w / 2, h + 10.0)
    r = np.hypot(xx - apex[0], yy - apex[1])
    th = np.arctan2(xx - apex[0], apex[1] - yy)
    inside = (r > 18) & (r < h + 5) & (np.abs(th) < 0.8)
    img = rng.uniform(30, 70, (h, w)) * inside
    cx, cy, rad = w / 2 + rng.uniform(-6, 6), h * 0.75 + rng.uniform(-4, 4), rng.uniform(18, 24)
    t = np.linspace(np.pi * 0.95, np.pi * 0.05, 11)
    tongue = np.stack([cx + rad * np.cos(t), cy - 0.8 * rad * np.sin(t)], -1)
    for x, y in tongue:
        img += 180 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0) * inside
    extra = np.array([[cx - 12, h - 6], [cx + 14, h - 5], [cx + 9, h - 12]])
    return np.clip(img, 0, 255).astype(np.uint8), np.concatenate([tongue, extra])


def make_dlc_set(root: Path, recordings: int = 5, frames: int = 4, seed: int = 0) -> Path:
    from articulate.readers.dlc import write_dlc_csv

    rng = np.random.default_rng(seed)
    for r in range(recordings):
        folder = root / f"rec{r:02d}"
        folder.mkdir(parents=True)
        names, kps = [], []
        for i in range(frames):
            img, kp = synthetic_frame(rng)
            if i == 1:
                kp[9] = np.nan  # an unlabelled tongue tip
            Image.fromarray(img).convert("RGB").save(folder / f"img{i:03d}.png")
            names.append(f"labeled-data\\{folder.name}\\img{i:03d}.png")
            kps.append(kp)
        write_dlc_csv(folder / "CollectedData_T.csv", names, PARTS, np.stack(kps), scorer="T")
    (root / "unlabelled").mkdir()
    Image.fromarray(np.zeros((60, 80), np.uint8)).save(root / "unlabelled" / "x.png")
    return root


def tiny_config(data: Path, tmp: Path) -> Path:
    cfg = {
        "trainer": {"max_steps": 6, "val_check_interval": 3, "limit_val_batches": 1, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(tmp / "run"),
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(tmp / "ckpt"), "monitor": "val/msd_px", "mode": "min",
                                                 "save_last": True}}]},
        "model": {"init_args": {"lr_scheduler": {"init_args": {"warmup_steps": 2}},
                                "network": {"init_args": {"base_channels": 4, "depth": 2}}}},
        "data": {"init_args": {"data_dir": str(data), "input_size": [64, 80], "batch_size": 4, "num_workers": 0,
                               "split": {"test_recordings": ["rec00"], "val_recordings": ["rec01"]},
                               "pixel_mm": {"rec0": 0.5}}},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from articulate.training.lightning_cli import ArticulateCLI

    tmp = tmp_path_factory.mktemp("uti2contour-fit")
    data = make_dlc_set(tmp / "labeled-data")
    configs = [ROOT / "configs" / "uti2contour.yaml", ROOT / "configs" / "uti2contour" / "quick.yaml", tiny_config(data, tmp)]
    torch.manual_seed(0)
    cli = ArticulateCLI(args=["fit"] + [a for c in configs for a in ("--config", str(c))])
    torch.set_num_threads(1)
    return cli, tmp, data


@pytest.mark.slow
def test_fit_logs_the_model_and_the_baselines(fitted):
    cli, tmp, _ = fitted
    res = cli.model.test_results
    for key in ("test/msd_px", "test/msd_px_std", "test/found_fraction", "test/msd_px_mean_shape",
                "test/msd_px_edge_tracer", "test/msd_mm", "test/msd_mm_mean_shape"):
        assert key in res and np.isfinite(res[key]), key
    assert res["test/msd_mm"] == pytest.approx(0.5 * res["test/msd_px"])  # rec00 has 0.5 mm pixels
    assert (tmp / "ckpt" / "last.ckpt").is_file()
    dm = cli.datamodule
    names = {p: [dm.recordings[i].name for i in idx] for p, idx in dm.parts.items()}
    assert names["test"] == ["rec00"] and names["val"] == ["rec01"] and len(names["train"]) == 3
    assert [p.name for p in dm.unlabelled] == ["unlabelled"]


@pytest.mark.slow
def test_checkpoint_round_trip_gives_the_modules_keypoints(fitted):
    from articulate.contour.tracker import ContourTracker

    cli, tmp, data = fitted
    best = cli.trainer.checkpoint_callback.best_model_path
    ck = torch.load(best, map_location="cpu", weights_only=True)  # plain data only
    assert ck["articulate"]["direction"] == "uti2contour" and ck["articulate"]["init"]["keypoints"] == PARTS
    tracker = ContourTracker.from_checkpoint(best, "cpu")
    module = cli.model.eval()  # holds the best weights: test ran from that checkpoint
    frames = np.stack([np.asarray(Image.open(p).convert("L")) for p in sorted((data / "rec00").glob("*.png"))])
    kp_ckpt, conf_ckpt = tracker(frames, probe="bottom")
    kp_mod, conf_mod = module.tracker()(frames, probe="bottom")
    torch.testing.assert_close(kp_ckpt, kp_mod)
    torch.testing.assert_close(conf_ckpt, conf_mod)
    # and the module's own evaluation path (DataModule preprocessing) gives the same keypoints
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        kp_eval, _ = module.predict_keypoints(batch)
    np.testing.assert_allclose(kp_eval.numpy(), kp_ckpt.numpy(), atol=1e-3)


@pytest.mark.slow
def test_track_contours_on_a_video_images_and_ult(fitted, tmp_path):
    from articulate.cli.track_contours import main
    from articulate.contour.tracker import ContourTracker
    from articulate.readers.dlc import read_dlc_csv
    from articulate.readers.ultrasound import UltrasoundParams, write_param, write_ult
    from articulate.readers.video import read_video, write_video

    cli, tmp, data = fitted
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    rng = np.random.default_rng(7)
    frames = np.stack([synthetic_frame(rng)[0] for _ in range(6)])
    video = write_video(tmp_path / "clip.mp4", frames, 30.0)
    out, overlay = tmp_path / "tracks.csv", tmp_path / "overlay.mp4"
    assert main(["--ckpt", ckpt, "--input", str(video), "--out", str(out), "--overlay", str(overlay), "--quiet",
                 "--probe", "bottom"]) == 0
    rows = list(csv.reader(out.open()))
    assert [r[0] for r in rows[:3]] == ["scorer", "bodyparts", "coords"] and len(rows) == 3 + 6
    assert rows[2][1:4] == ["x", "y", "likelihood"] and [r[0] for r in rows[3:]] == [str(i) for i in range(6)]
    table = read_dlc_csv(out)
    decoded, fps = read_video(video)
    kp, conf = ContourTracker.from_checkpoint(ckpt, "cpu")(decoded, probe="bottom")
    np.testing.assert_allclose(table.keypoints, kp.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(table.likelihood, conf.numpy(), rtol=0, atol=1e-6)
    shown, ofps = read_video(overlay)
    assert shown.shape == decoded.shape and ofps == pytest.approx(30.0)
    assert (shown != decoded).any()  # the contour is drawn
    # a folder of images: rows are the file names
    assert main(["--ckpt", ckpt, "--input", str(data / "rec02"), "--out", str(tmp_path / "imgs.csv"), "--quiet"]) == 0
    assert read_dlc_csv(tmp_path / "imgs.csv").rows == ["img000.png", "img001.png", "img002.png", "img003.png"]
    # raw scan lines + .param, rendered to fan images
    params = UltrasoundParams(num_vectors=32, pix_per_vector=64, zero_offset=16, bits_per_pixel=8, angle=0.04,
                              kind=0, pixels_per_mm=2.0, fps=50.0, time_first_frame=0.0)
    write_param(tmp_path / "u.param", params)
    write_ult(tmp_path / "u.ult", rng.integers(0, 255, (5, 32, 64), dtype=np.uint8))
    assert main(["--ckpt", ckpt, "--input", str(tmp_path / "u.ult"), "--out", str(tmp_path / "u.csv"), "--size", "60x80",
                 "--quiet"]) == 0
    assert read_dlc_csv(tmp_path / "u.csv").keypoints.shape == (5, 14, 2)


def _run_tool(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "articulate.cli.track_contours", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_track_contours_bad_input_one_line_exit_1_no_output(fitted, tmp_path):
    from articulate.cli.track_contours import main

    cli, tmp, _ = fitted
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 10)
    out, overlay = tmp_path / "t.csv", tmp_path / "o.mp4"
    proc = _run_tool(["--ckpt", ckpt, "--input", str(bad), "--out", str(out), "--overlay", str(overlay)])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "broken.mp4: not a readable video" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]  # no partial output, no temp files
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": {}, "articulate": {"direction": "wav2uti"}}, wrong)
    proc = _run_tool(["--ckpt", str(wrong), "--input", str(bad), "--out", str(out)])
    assert proc.returncode == 1 and "a wav2uti checkpoint; this needs a uti2contour one" in proc.stderr
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"articulate": {"direction": "uti2contour"}, "evil": object()}, pickled)
    with pytest.raises(InputError, match="refused: the file asks to run or rebuild"):  # weights_only refuses objects
        main(["--ckpt", str(pickled), "--input", str(bad), "--out", str(out)])
    with pytest.raises(InputError, match="input not found"):
        main(["--ckpt", ckpt, "--input", str(tmp_path / "none.avi"), "--out", str(out)])
    with pytest.raises(InputError, match="no scan parameters"):
        (tmp_path / "lonely.ult").write_bytes(b"\x00" * 64)
        main(["--ckpt", ckpt, "--input", str(tmp_path / "lonely.ult"), "--out", str(out)])
    assert not out.exists() and not overlay.exists()


def test_split_holds_out_whole_speakers_per_family(tmp_path):
    from datamodules.uti2contour import ContourDataModule, HeldOutSpeakers, family_of

    root = tmp_path / "ld"
    root.mkdir()
    rng = np.random.default_rng(0)
    from articulate.readers.dlc import write_dlc_csv

    names = [f"TaL_1to80{i:02d}" for i in range(3, 13)] + [f"Ultrax_TD_00{i}" for i in range(1, 5)] + ["video10"]
    for n in names:
        (root / n).mkdir()
        img, kp = synthetic_frame(rng)
        Image.fromarray(img).save(root / n / "img0.png")
        write_dlc_csv(root / n / "CollectedData_A.csv", ["img0.png"], PARTS, kp[None])
    assert family_of("TaL_1to8003") == "TaL_1to" and family_of("Ultrax_TD_004") == "Ultrax_TD" and family_of("video10") == "video"
    dm = ContourDataModule(str(root), input_size=(32, 40), seed=3, pixel_mm={"TaL_1to80": 0.44, "TaL_1to8012": 0.5})
    dm.setup("fit")
    parts = {p: {dm.recordings[i].name for i in idx} for p, idx in dm.parts.items()}
    assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["val"]) and not (parts["test"] & parts["val"])
    assert sum(n.startswith("TaL") for n in parts["test"]) == 2 and sum(n.startswith("Ultrax") for n in parts["test"]) == 1
    assert "video10" in parts["train"]  # a family of one speaker is never held out
    mm = {r.name: r.mm_per_pixel for r in dm.recordings}
    assert mm["TaL_1to8003"] == 0.44 and mm["TaL_1to8012"] == 0.5 and np.isnan(mm["Ultrax_TD_001"])
    # a regex can make several folders one speaker: then they move together
    dm2 = ContourDataModule(str(root), input_size=(32, 40), split=HeldOutSpeakers(speaker_pattern=r"^(Ultrax)_TD"), seed=0)
    dm2.setup("fit")
    ux = {p for p, idx in dm2.parts.items() for i in idx if dm2.recordings[i].name.startswith("Ultrax")}
    assert len(ux) == 1


def test_phantom_default_data_has_true_tongue_keypoints_on_the_echo():
    from datamodules.uti2contour import ContourDataModule, PhantomFrames

    dm = ContourDataModule(None, input_size=(64, 80), phantom={"subjects": 3, "vowels": 1, "words": 0, "sentences": 0},
                           phantom_frames=PhantomFrames(step=10, size=(60, 80)), probe="bottom")
    dm.setup("fit")
    assert len({r.speaker for r in dm.recordings}) == 3 and all(dm.parts[p] for p in ("train", "val", "test"))
    rec = dm.recordings[0]
    # the phantom's own ground truth keeps DLC's anatomical points: those outside the fan (vallecula,
    # tongueRoot1 with this probe; tongueRoot2 in some frames) are NaN (masked in training), the body to the
    # tip is always visible
    assert rec.keypoints.shape[1:] == (14, 2) and np.isfinite(rec.keypoints[:, 3:11]).all()
    assert np.isnan(rec.keypoints[:, 11:]).all()  # hyoid, mandible, short tendon: missing (masked)
    assert rec.fan is not None and rec.fan.probe == "bottom" and np.isfinite(rec.mm_per_pixel)
    # flipped with the image: the keypoints still sit on bright surface echo
    vals = [f[int(round(y)), int(round(x))] for f, kps in zip(rec.frames, rec.keypoints) for x, y in kps[3:9]]
    assert np.median(vals) > 2 * np.median(rec.frames[0][rec.frames[0] > 0])
    item = dm.train_dataloader().dataset[0]
    assert item["image"].shape == (1, 64, 80) and item["valid"][11:].sum() == 0


@pytest.mark.slow
def test_score_contour_msd_between_two_videos(fitted, tmp_path, capsys):
    """`articulate score --metrics contour_msd --contour-ckpt C`: tracks both videos with the checkpoint;
    the same figures as the metric fed with the decoded frames in Python."""
    import json

    from articulate.cli.main import main as articulate
    from articulate.contour.tracker import ContourTracker
    from articulate.metrics.contour import keypoint_msd
    from articulate.readers.video import read_video, write_video

    cli, tmp, data = fitted
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    rng = np.random.default_rng(11)
    a = write_video(tmp_path / "ref" / "u.mp4", np.stack([synthetic_frame(rng)[0] for _ in range(4)]), 30.0)
    b = write_video(tmp_path / "pred" / "u.mp4", np.stack([synthetic_frame(rng)[0] for _ in range(4)]), 30.0)
    assert articulate(["score", "--ref", str(a.parent), "--pred", str(b.parent), "--metrics", "contour_msd",
                       "--contour-ckpt", ckpt, "--probe", "bottom", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    from articulate.metrics.contour import ContourMSD

    m = ContourMSD(pred_kind="images", target_kind="images", contour_ckpt=ckpt, probe="bottom", threshold=0.0)
    ra, rb = (torch.from_numpy(read_video(v)[0].astype(np.float32))[None] for v in (a, b))
    m.update(rb, ra, sample_index=torch.tensor([0]))
    # threshold 0: every frame counts as found, so the value is the mean per-frame MSD of the tracked points
    tracker = ContourTracker.from_checkpoint(ckpt)
    ka, _ = tracker(read_video(a)[0], probe="bottom")
    kb, _ = tracker(read_video(b)[0], probe="bottom")
    expect = np.mean([keypoint_msd(p[:11], r[:11]) for p, r in zip(kb.numpy(), ka.numpy())])
    assert float(m.compute()) == pytest.approx(expect, rel=1e-6)
    default = ContourMSD(pred_kind="images", target_kind="images", contour_ckpt=ckpt, probe="bottom")
    default.update(rb, ra, sample_index=torch.tensor([0]))
    summary = default.summary()
    assert got["contour_found_fraction"] == pytest.approx(summary["found_fraction"])
    assert (got["contour_msd"] is None) == (not np.isfinite(summary["msd_px"]))
    if got["contour_msd"] is not None:
        assert got["contour_msd"] == pytest.approx(summary["msd_px"], rel=1e-6)
    assert articulate(["score", "--ref", str(a), "--pred", str(b), "--metrics", "contour_msd"]) == 1
    assert "--contour-ckpt" in capsys.readouterr().err
