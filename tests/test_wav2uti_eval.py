"""The wav2uti test stage beside the model: the phantom's true keypoints in the clips' pixel frame, the
floors (mean frame, ridge probe) and the contour measure with a tiny (untrained) tracker checkpoint,
each checked against an independent computation (ContourMSD on images, RMSE on the probe's output)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fit_in_process, stack, wav2uti_tiny_override, write_yaml

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from articulate.phantom import generate

    return generate("wav2uti", tmp_path_factory.mktemp("w2u-phantom") / "cohort", subjects=3, seed=3, quiet=True,
                    workers=1, vowels=1, words=1, sentences=0)


def _dm(root, res, **kw):
    from articulate.transforms.clips import ClipGeometry
    from datamodules.wav2uti import SpeakerSplit, Wav2UTIDataModule

    args = dict(data_dir=str(root), clips=ClipGeometry(resolution=res, frames=4),
                split=SpeakerSplit(test_subjects=1, val_subjects=1), batch_size=4, num_workers=0)
    args.update(kw)
    dm = Wav2UTIDataModule(**args)
    dm.setup("fit")
    return dm


def test_true_keypoints_are_the_phantom_surface_of_each_clips_frames(phantom):
    from articulate.phantom import tongue_keypoints
    from articulate.readers.scan_conversion import FanConverter
    from articulate.readers.ultrasound import read_param

    dm = _dm(phantom, 48)
    assert dm.has_keypoints
    batch = next(iter(dm.test_dataloader()))
    kp = batch["true_keypoints"]
    assert kp.shape == (4, 4, 11, 2) and kp.dtype == torch.float32
    for i in range(4):
        utt = dm.utterances[int(batch["utterance"][i])]
        s = int(batch["start"][i])
        want = tongue_keypoints(utt.source.with_suffix(".ult"), size=(48, 48))[s:s + 4]
        np.testing.assert_allclose(kp[i].numpy(), want, rtol=1e-6)
        fan = FanConverter(read_param(utt.source.with_suffix(".param")), size=(48, 48))
        assert float(batch["mm_per_pixel"][i]) == pytest.approx(fan.mm_per_pixel)


def test_true_keypoints_land_on_the_datamodules_pixels(phantom, tmp_path):
    """Independent of the phantom's renderer: replace every frame by a blob drawn in scan-line space at a
    keypoint's (line, sample); the fan image the DataModule draws has the blob's centroid at that keypoint."""
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.ultrasound import read_param, write_ult

    root = tmp_path / "blobs"
    shutil.copytree(phantom, root)
    j = 5  # tongueDorsum1: inside the fan in (almost) every frame
    for rec in index_dataset(root):
        params = read_param(rec.param)
        with np.load(rec.image.with_name(rec.image.name[:-4] + ".traj.npz")) as z:
            polar = z["keypoints_polar"][:, j].astype(np.float64)  # (line, sample) per frame
        lines, samples = np.arange(params.num_vectors)[:, None], np.arange(params.pix_per_vector)[None]
        scan = np.zeros((len(polar), params.num_vectors, params.pix_per_vector), np.float32)
        for f, (li, sa) in enumerate(polar):
            if np.isfinite(li):
                scan[f] = 250 * np.exp(-0.5 * (((lines - li) / 0.7) ** 2 + ((samples - sa) / 3.0) ** 2))
        write_ult(rec.image, np.clip(np.rint(scan), 0, 255).astype(np.uint8))
    dm = _dm(root, 64)
    errors = []
    for batch in dm.test_dataloader():
        img = (batch["video"][:, 0].numpy() + 1) * 127.5  # [B, T, H, W]
        kp = batch["true_keypoints"][:, :, j].numpy()  # [B, T, 2] as (x, y)
        rows, cols = np.mgrid[0:64, 0:64]
        for b in range(img.shape[0]):
            for t in range(img.shape[1]):
                w = img[b, t]
                if not np.isfinite(kp[b, t]).all() or w.sum() < 50:
                    continue
                centroid = np.array([(w * cols).sum(), (w * rows).sum()]) / w.sum()
                errors.append(np.linalg.norm(centroid - kp[b, t]))
    assert len(errors) > 10
    assert np.median(errors) < 0.15 and max(errors) < 0.3, (np.median(errors), max(errors))  # measured 0.03, 0.08


def test_clips_without_ground_truth_carry_no_keypoints(tmp_path):
    from helpers import make_cohort

    dm = _dm(make_cohort(tmp_path / "c", speakers=3, utterances=1, seconds=0.3), 16)
    item = dm.dataset("test")[0]
    assert not dm.has_keypoints and "true_keypoints" not in item
    assert float(item["mm_per_pixel"]) > 0  # .param files give the pixel size


@pytest.fixture(scope="module")
def tiny_tracker(tmp_path_factory) -> Path:
    from articulate.contour.tracker import ContourTracker
    from articulate.networks.uti2contour import HeatmapUNet
    from datamodules.uti2contour import DLC_BODYPARTS

    torch.manual_seed(0)
    net = HeatmapUNet(num_keypoints=14, base_channels=4, depth=2, blocks=1)
    path = tmp_path_factory.mktemp("tracker") / "tracker.ckpt"
    torch.save(ContourTracker(net, input_size=(32, 40), keypoints=DLC_BODYPARTS, probe="bottom").checkpoint(), path)
    return path


def test_test_stage_logs_floors_and_contours_that_match_independent_metrics(phantom, tiny_tracker, tmp_path):
    from articulate.metrics import RMSE
    from articulate.metrics.contour import ContourMSD
    from articulate.metrics.functional import detail_ratio

    over = wav2uti_tiny_override(phantom, "dnn.yaml", tmp_path)
    over = write_yaml(tmp_path / "more.yaml", {
        **__import__("yaml").safe_load(over.read_text()),
        "model": {"init_args": {"network": {"init_args": {"hidden": 32, "num_layers": 2, "context": 2}},
                                "evaluation": {"contour_ckpt": str(tiny_tracker), "contour_threshold": 0.0},
                                "baselines": {"class_path": "articulate.baselines.wav2uti.RidgeProbe",
                                              "init_args": {"n_mels": 16, "context": 2}}}},
    })
    data = ["--data.init_args.clips.resolution", "32", "--data.init_args.max_eval_clips", "6"]
    cli = fit_in_process(stack("wav2uti", "dnn.yaml") + [over], data)
    model, dm = cli.model, cli.datamodule
    results = cli.trainer.test(model, datamodule=dm, verbose=False)[0]
    for key in ("test/rmse_mean_baseline", "test/psnr_mean_baseline", "test/rmse_ridge", "test/psnr_ridge",
                "test/contour_msd", "test/contour_found_fraction", "test/contour_msd_truth",
                "test/contour_msd_truth_oracle", "test/contour_found_fraction_oracle", "test/contour_msd_ridge",
                "test/contour_msd_mean_baseline", "test/contour_msd_mm", "test/contour_msd_truth_mm",
                "test/rmse_random_clip", "test/psnr_random_clip", "test/contour_msd_random_clip",
                "test/contour_msd_truth_random_clip", "test/swap_change", "test/swap_change_real",
                "test/swap_contour_change", "test/swap_contour_change_real", "test/detail_ratio",
                "test/detail_ratio_mean_baseline", "test/detail_ratio_ridge", "test/detail_ratio_random_clip"):
        assert key in results and np.isfinite(results[key]), key
    # the swap check of the real clips is the random clip's own distance to the clip
    assert results["test/swap_change_real"] == pytest.approx(results["test/rmse_random_clip"], rel=1e-9)
    assert results["test/contour_found_fraction"] == 1.0  # threshold 0: every tongue counts as found
    # fine detail: the mean frame is smoother than any real frame; another utterance's real clip has its detail
    assert results["test/detail_ratio_mean_baseline"] < 0.75 * results["test/detail_ratio_random_clip"]

    # independent: the same clips through ContourMSD (on images for mode (a); mode (b) on the tracker's
    # keypoints without the points the truth lacks, outside the fan) and RMSE on the probe's predictions
    from articulate.contour.tracker import ContourTracker

    tracker = ContourTracker.from_checkpoint(tiny_tracker)
    a = ContourMSD(pred_kind="images", target_kind="images", contour_ckpt=str(tiny_tracker), threshold=0.0)
    b = ContourMSD(threshold=0.0)
    oracle = ContourMSD(threshold=0.0)
    ridge = RMSE(pixel_range="signed")
    detail = []
    random_clip, swap = RMSE(pixel_range="signed"), RMSE(pixel_range="signed")
    model.eval()
    probe = model.baselines
    outside = 0
    with torch.no_grad():
        for batch in dm.test_dataloader():
            pred = model.predict_clips(batch, batch["video"].shape[0], cascade=True).clamp(-1, 1)
            real, idx, truth = batch["video"], batch["sample_index"], batch["true_keypoints"]
            unit = lambda v: (v + 1) / 2  # noqa: E731
            a.update(unit(pred), unit(real), sample_index=idx)
            for video, metric in ((pred, b), (real, oracle)):
                kp, _ = tracker(unit(video)[:, 0].reshape(-1, 32, 32), probe="top")
                kp = kp.double().reshape(*truth.shape[:2], 14, 2)
                kp[:, :, :11][~torch.isfinite(truth).all(-1)] = float("nan")
                metric.update(kp, truth, sample_index=idx)
            outside += int((~torch.isfinite(truth).all(-1)).sum())
            ridge.update(probe.predict(batch["audio"], real.shape[2]), real, sample_index=idx)
            detail.append(detail_ratio(pred.double(), real.double()))
            # the random-clip floor: another utterance's real clip; the swap check: the partner's speech
            assert (batch["partner_utterance"] != batch["utterance"]).all()
            random_clip.update(batch["partner_video"], real, sample_index=idx)
            other = {**batch, "audio": batch["partner_audio"]}
            if "audio_feats" in batch:
                other["audio_feats"] = batch["partner_audio_feats"]
            swap.update(model.predict_clips(other, real.shape[0], cascade=True).clamp(-1, 1), pred, sample_index=idx)
    assert outside > 0  # the masking is exercised: some true points are outside the fan
    assert results["test/contour_msd"] == pytest.approx(float(a.compute()), rel=1e-5)
    assert results["test/contour_msd_truth"] == pytest.approx(float(b.compute()), rel=1e-5)
    assert results["test/contour_msd_truth_oracle"] == pytest.approx(float(oracle.compute()), rel=1e-5)
    assert results["test/rmse_ridge"] == pytest.approx(float(ridge.compute()), rel=1e-5)
    assert results["test/rmse_random_clip"] == pytest.approx(float(random_clip.compute()), rel=1e-5)
    assert results["test/swap_change"] == pytest.approx(float(swap.compute()), rel=1e-5)
    assert results["test/swap_change"] > 0  # even an untrained DNN's output moves with its input
    assert results["test/detail_ratio"] == pytest.approx(float(torch.cat(detail).mean()), rel=1e-5)
    # the mean frame is the training clips' mean
    train = dm.baseline_clips("train")
    mean = torch.stack([train[i]["video"] for i in range(len(train))]).mean(dim=(0, 1, 2))
    np.testing.assert_allclose(probe.mean_frame.numpy(), mean.clamp(-1, 1).numpy(), atol=1e-5)

    # per-recording means for the paired tests: frame-weighted, they give back the logged means
    per = model.test_per_recording
    assert set(per["recording"]) <= {u.id for u in dm.utterances} and len(per["recording"]) >= 1
    frames = np.array(per["frames"], float)
    assert frames.sum() == 6 * 4
    assert np.dot(frames, per["rmse"]) / frames.sum() == pytest.approx(results["test/rmse"], rel=1e-5)
    assert np.dot(frames, per["rmse_ridge"]) / frames.sum() == pytest.approx(results["test/rmse_ridge"], rel=1e-5)
    # and written beside the run's logs (when it has a log folder) for paired tests between runs
    import json

    if cli.trainer.log_dir:
        assert json.loads((Path(cli.trainer.log_dir) / "test_per_recording.json").read_text()) == per


def test_a_missing_contour_checkpoint_fails_before_the_fit(phantom, tmp_path):
    from articulate.errors import InputError

    over = wav2uti_tiny_override(phantom, "dnn.yaml", tmp_path)
    with pytest.raises(InputError, match="contour_ckpt"):
        fit_in_process(stack("wav2uti", "dnn.yaml") + [over], ["--model.init_args.evaluation.contour_ckpt", str(tmp_path / "no.ckpt")])


def test_tracker_checkpoints_of_phantom_training_load_despite_the_nan_mean_shape(tiny_tracker, tmp_path):
    """A uti2contour fit on the phantom saves its mean_shape buffer NaN for the points the phantom lacks (hyoid,
    mandible, short tendon): the tracker itself is sound and loads; NaN in the network's weights does not."""
    from articulate.contour.tracker import ContourTracker
    from articulate.errors import InputError
    from lightning_modules.wav2uti_eval import load_tracker

    ck = torch.load(tiny_tracker, weights_only=True)
    ck["state_dict"]["mean_shape"] = torch.full((14, 2), float("nan"))
    torch.save(ck, tmp_path / "with_mean.ckpt")
    with pytest.raises(InputError, match="NaN"):
        ContourTracker.from_checkpoint(tmp_path / "with_mean.ckpt")  # the generic check refuses it
    tracker = load_tracker(str(tmp_path / "with_mean.ckpt"))
    kp, conf = tracker(torch.rand(2, 32, 32), probe="top")
    assert kp.shape == (2, 14, 2) and torch.isfinite(kp).all()
    first = next(k for k in ck["state_dict"] if k.startswith("network.") and ck["state_dict"][k].is_floating_point())
    ck["state_dict"][first] = torch.full_like(ck["state_dict"][first], float("nan"))
    torch.save(ck, tmp_path / "diverged.ckpt")
    with pytest.raises(InputError, match="tracker weights hold NaN"):
        load_tracker(str(tmp_path / "diverged.ckpt"))


def test_partners_are_other_speakers_clips_drawn_deterministically():
    from datamodules.clips import partner_windows

    windows = [(u, s) for u in range(4) for s in (0, 8)]
    speakers = ["a", "a", "a", "a", "b", "b", "c", "c"]
    got = partner_windows(windows, speakers, seed=0)
    assert got == partner_windows(windows, speakers, seed=0)
    assert all(speakers[j] != speakers[i] for i, j in enumerate(got))
    assert got != partner_windows(windows, speakers, seed=1)
    # one speaker: another utterance; one utterance: no partner
    assert all(windows[j][0] != windows[i][0] for i, j in enumerate(partner_windows(windows, ["a"] * 8, 0)))
    assert partner_windows([(0, 0), (0, 8)], ["a", "a"], 0) == [None, None]


def test_guidance_is_chosen_on_the_validation_speakers(phantom, tiny_tracker, tmp_path):
    """guidance.candidates x start_candidates: each (scale, start) samples the first validation clips from the same
    noise; the one with the smallest contour MSD against the true surface among those that keep min_detail of the
    real frames' detail is kept for the test (logged), never picked on test clips."""
    from articulate.contour.tracker import ContourTracker
    from articulate.metrics.contour import ContourMSD
    from articulate.metrics.functional import detail_ratio

    over = wav2uti_tiny_override(phantom, None, tmp_path)
    over = write_yaml(tmp_path / "more.yaml", {
        **__import__("yaml").safe_load(over.read_text()),
        "model": {"init_args": {**__import__("yaml").safe_load(over.read_text())["model"]["init_args"],
                                "evaluation": {"val_clips": 2, "contour_ckpt": str(tiny_tracker),
                                               "contour_threshold": 0.0},
                                "guidance": {"candidates": [1.0, 4.0], "start_candidates": [None, 0.5]}}},
    })
    cli = fit_in_process(stack("wav2uti", None) + [over], ["--data.init_args.clips.resolution", "32"])
    model, dm = cli.model, cli.datamodule
    full = model.sampler
    results = cli.trainer.test(model, datamodule=dm, verbose=False)[0]
    scores = model.guidance_scores
    assert scores["measure"] == "val/contour_msd_truth"
    pairs = [(c["scale"], c["start"]) for c in scores["candidates"]]
    assert pairs == [(1.0, None), (1.0, 0.5), (4.0, None), (4.0, 0.5)]
    best = min(scores["candidates"], key=lambda c: c["score"])  # min_detail 0: every candidate is eligible
    assert (results["test/guidance_scale"], results["test/sampler_start"]) == (best["scale"],
                                                                               best["start"] or full.sigma_max)
    # independently: the validation clips' contour MSD and detail for each pair
    tracker = ContourTracker.from_checkpoint(tiny_tracker)
    val_speakers = set(dm.speakers["val"])
    for c in scores["candidates"]:
        model.guidance_scale, model.sampler = c["scale"], full.replace(sigma_start=c["start"])
        metric, detail = ContourMSD(threshold=0.0), []
        with torch.no_grad():
            for batch in dm.val_dataloader():
                assert {dm.utterances[int(u)].speaker for u in batch["utterance"]} <= val_speakers
                pred = model.predict_clips(batch, batch["video"].shape[0], cascade=False).clamp(-1, 1)
                detail.append(detail_ratio(pred.double(), batch["video"].double()))
                truth = batch["true_keypoints"]
                kp, _ = tracker(((pred + 1) / 2)[:, 0].reshape(-1, 32, 32), probe="top")
                kp = kp.double().reshape(*truth.shape[:2], 14, 2)
                kp[:, :, :11][~torch.isfinite(truth).all(-1)] = float("nan")
                metric.update(kp, truth)
        assert c["score"] == pytest.approx(float(metric.compute()), rel=1e-5)
        assert c["detail"] == pytest.approx(float(torch.cat(detail).mean()), rel=1e-5)
    # a detail floor above every candidate's but one leaves that one; above all, the most detailed is kept
    richest = max(scores["candidates"], key=lambda c: c["detail"])
    model.guidance = dataclasses.replace(model.guidance, min_detail=richest["detail"])
    model.sampler = full
    assert model.choose_guidance() == (richest["scale"], richest["start"])
    model.guidance = dataclasses.replace(model.guidance, min_detail=richest["detail"] + 1)
    assert model.choose_guidance() == (richest["scale"], richest["start"])
