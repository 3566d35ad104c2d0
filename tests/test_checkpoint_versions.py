"""Checkpoints of an older version that name options removed since (``articulate.components.REMOVED_OPTIONS``):
saved at the value under which they did nothing, they load (one warning line names what was dropped); saved at
another value, or naming an option the class no longer takes at all, they are refused with one line."""

from __future__ import annotations

import logging

import pytest
from badinput_helpers import CONFIGS, assert_refused, edited_checkpoint, run

from articulate.training.lightning_cli import ArticulateCLI


class BuildOnly(ArticulateCLI):
    """``articulate test`` up to the built model, data and trainer, without running the test."""

    def _run_subcommand(self, subcommand: str) -> None:
        pass


def older(src, dst, top: dict | None = None, translator: dict | None = None):
    """A copy of a checkpoint whose hyperparameters (and the translator's saved arguments) hold ``top`` / ``translator``."""

    def edit(ck):
        ck["hyper_parameters"].update(top or {})
        for spec in (ck["hyper_parameters"]["translator"], ck["articulate"]["init"]["translator"]):
            spec["init_args"].update(translator or {})

    return edited_checkpoint(src, dst, edit)


def components_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "articulate.components"]


def test_options_saved_at_their_no_op_value_are_dropped_with_one_warning_line(tiny_checkpoints, tmp_path, caplog):
    from articulate.inference import load_predictor

    ck = older(tiny_checkpoints.mri2audio, tmp_path / "old.ckpt", top={"mask_sparsity": 0.0, "lr_schedule": "constant"},
               translator={"time_axis": False, "output_bias": False, "input_scale": 1.0})
    with caplog.at_level(logging.WARNING, logger="articulate.components"):
        cli = BuildOnly(args=["test", "--config", str(CONFIGS / "mri2audio.yaml"), "--ckpt_path", str(ck),
                              "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path / 'run'}"])
    (line,) = components_warnings(caplog)
    for name in ("mask_sparsity", "lr_schedule", "HeterogeneousTranslator.time_axis", "output_bias", "input_scale"):
        assert name in line
    assert cli.model.translator.encoder[0].out_channels == 4  # the checkpoint's networks, not the config's
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="articulate.components"):
        predictor = load_predictor(ck)  # inference rebuilds the networks from the checkpoint alone
    (line,) = components_warnings(caplog)
    assert "time_axis" in line and predictor.translator.encoder[0].out_channels == 4


@pytest.mark.parametrize("top, translator, problem", [
    ({"mask_sparsity": 2.0}, None, "mask_sparsity=2.0"),
    (None, {"time_axis": True}, "time_axis=True"),
    ({"beta": 0.5}, None, "no longer takes beta"),
], ids=["removed-but-used", "removed-network-option-used", "unknown"])
def test_options_this_version_cannot_honour_refuse_the_checkpoint_with_one_line(tiny_checkpoints, tmp_path, capfd,
                                                                                  top, translator, problem):
    ck = older(tiny_checkpoints.mri2audio, tmp_path / "old.ckpt", top=top, translator=translator)
    res = run(capfd, "test", "--config", CONFIGS / "mri2audio.yaml", "--ckpt_path", ck, "--trainer.logger=false",
              f"--trainer.default_root_dir={tmp_path / 'run'}")
    assert_refused(res, "test", ck, problem)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind, removed", [("wav2uti", {"lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 0}),
                                           ("wav2uti_dnn", {"lr": 1e-3, "weight_decay": 0.0})], ids=["diffusion", "dnn"])
def test_a_wav2uti_checkpoint_with_the_old_optimizer_options_is_refused_for_training_and_loads_for_inference(
        tiny_checkpoints, tmp_path, capfd, kind, removed):
    """Before issue 28 the wav2uti modules took ``lr``, ``weight_decay`` (and the diffusion ``warmup_steps``) instead of
    the ``optimizer`` / ``lr_scheduler`` callables. ``lr`` has no value under which it did nothing, so ``--ckpt_path``
    refuses such a checkpoint with one line; inference never read them and still loads it."""
    import numpy as np

    from articulate.inference import load_predictor

    def edit(ck):
        for key in ("optimizer", "lr_scheduler", "lambdas", "losses"):
            ck["hyper_parameters"].pop(key, None)
        ck["hyper_parameters"].update(removed)

    ck = edited_checkpoint(getattr(tiny_checkpoints, kind), tmp_path / "old.ckpt", edit)
    variant = ["--config", CONFIGS / "wav2uti" / "dnn.yaml"] if kind == "wav2uti_dnn" else []
    res = run(capfd, "test", "--config", CONFIGS / "wav2uti.yaml", *variant, "--ckpt_path", ck, "--trainer.logger=false",
              f"--trainer.default_root_dir={tmp_path / 'run'}")
    assert_refused(res, "test", ck, "no longer takes " + ", ".join(removed))
    assert not (tmp_path / "run").exists()
    predictor = load_predictor(ck)
    frames = predictor.from_audio(np.zeros(16000 // 10, dtype=np.float32), 4, seed=0, **({} if kind == "wav2uti_dnn" else {"steps": 2}))
    assert frames.shape[-2:] == (16, 16) and bool(frames.isfinite().all())


@pytest.mark.parametrize("kind", ["wav2uti", "wav2uti_dnn"], ids=["diffusion", "dnn"])
def test_a_wav2uti_checkpoint_with_the_flat_options_of_before_their_grouping_loads_as_it_was_trained(
        tiny_checkpoints, tmp_path, caplog, kind):
    """Before the settings were grouped (issue 28: ``clips``, ``cascade``, ``guidance``, ``evaluation``) the wav2uti modules
    took them flat; such a checkpoint's values are read into their groups (``articulate.components.MOVED_OPTIONS``), and
    the two options removed with the grouping (``long_form_hop``, ``val_seed``), saved at their no-op values, are dropped
    with one warning line."""
    flat = {"resolution": 16, "clip_frames": 4, "fps": 60.0, "condition_context": 0, "contour_ckpt": None,
            "contour_threshold": 0.25}
    if kind == "wav2uti":
        flat.update(stage="base", low_res_size=64, aug_sigma_max=0.5, sample_aug_sigma=0.05, low_res_ckpt=None,
                    cond_drop_prob=0.2, guidance_scale=1.5, guidance_candidates=None, val_num_clips=3, long_form_hop=None,
                    val_seed=0)

    def edit(ck):
        for key in ("clips", "cascade", "guidance", "evaluation"):
            ck["hyper_parameters"].pop(key, None)
        ck["hyper_parameters"].update(flat)

    ck = edited_checkpoint(getattr(tiny_checkpoints, kind), tmp_path / "old.ckpt", edit)
    variant = ["--config", str(CONFIGS / "wav2uti" / "dnn.yaml")] if kind == "wav2uti_dnn" else []
    with caplog.at_level(logging.WARNING, logger="articulate.components"):
        cli = BuildOnly(args=["test", "--config", str(CONFIGS / "wav2uti.yaml"), *variant, "--ckpt_path", str(ck),
                              "--data.init_args.clips.resolution=16", "--data.init_args.clips.frames=4",
                              "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path / 'run'}"])
    model = cli.model
    assert (model.resolution, model.clip_frames, model.contour_threshold) == (16, 4, 0.25)
    if kind == "wav2uti":
        assert (model.guidance.drop_prob, model.guidance_scale, model.val_clips) == (0.2, 1.5, 3)
        (line,) = components_warnings(caplog)
        assert "long_form_hop" in line and "val_seed" in line
    else:
        assert not components_warnings(caplog)
