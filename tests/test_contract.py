"""The contract every registered LightningModule keeps (one test, parametrised over the registry):
its direction, a checkpoint that rebuilds the same model through the inference object alone, and
evaluation outputs in the callbacks' protocol."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import (
    LIP2AUDSPEC_TINY,
    MRI_TINY_NETS,
    fit_in_process,
    make_cohort,
    mri_tiny_overlay,
    quiet_trainer,
    stack,
    wav2uti_tiny_override,
)

from articulate.directions import directions

# How each module trains in the tests: (variant overlay or None, tiny model init_args). A module added to
# the registry without an entry here fails test_every_registered_module_has_a_contract_setup.
SETUPS = {
    "lightning_modules.mri2audio_translator.MRI2AudioTranslator": (None, MRI_TINY_NETS),
    "lightning_modules.mri2audio_translator.OracleMaskTranslator": (
        "oracle_mask.yaml", {k: v for k, v in MRI_TINY_NETS.items() if k != "attention"}),
    "lightning_modules.lip2audspec.Lip2AudSpec": ("lip2audspec.yaml", LIP2AUDSPEC_TINY),
    "lightning_modules.wav2uti_diffusion.Wav2UTIDiffusion": (None, None),
    "lightning_modules.wav2uti_dnn.Wav2UTIDNN": ("dnn.yaml", None),
    "lightning_modules.uti2contour.ContourHeatmapModule": (None, None),
}
PROTOCOL = {"mri2audio": {"mel_pred", "mel_target", "mri", "sample_index", "audio_pred", "audio_target", "sample_rate"},
            "wav2uti": {"video_pred", "video_target", "fps", "sample_index"},
            "uti2contour": {"keypoints_pred", "keypoints_target", "confidence", "sample_index"}}
MODULES = [(d.name, m) for d in directions() if d.name in PROTOCOL for m in d.modules]


def test_every_registered_module_has_a_contract_setup():
    builtin = {"mri2audio", "wav2uti", "uti2contour"}
    assert {m for d in directions() if d.name in builtin for m in d.modules} <= set(SETUPS)
    assert {d.name for d in directions()} >= builtin


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("contract-cohort"), speakers=3, utterances=2, seconds=0.5)


class Capture(L.Callback):
    def __init__(self):
        self.outputs = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if outputs:
            self.outputs.append((outputs, batch))


@pytest.mark.slow
@pytest.mark.parametrize("direction, module", MODULES, ids=[m.rsplit(".", 1)[-1] for _, m in MODULES])
def test_module_contract(direction, module, cohort, tmp_path):
    from articulate.checkpoints import Checkpoint
    from articulate.inference import load_predictor

    variant, nets = SETUPS[module]
    if direction == "mri2audio":
        tiny = mri_tiny_overlay(tmp_path / "tiny.yaml", nets, **quiet_trainer(tmp_path, max_steps=2))
    elif direction == "uti2contour":
        from test_uti2contour_fit import make_dlc_set, tiny_config

        tiny = tiny_config(make_dlc_set(tmp_path / "labeled-data"), tmp_path)
    else:
        tiny = wav2uti_tiny_override(cohort, variant, tmp_path)
    cli = fit_in_process([*stack(direction, variant), tiny], ["--trainer.limit_val_batches=1"])
    model = cli.model
    assert f"{type(model).__module__}.{type(model).__qualname__}" == module and model.direction == direction

    # validation outputs follow the callbacks' protocol
    cap = Capture()
    L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[cap],
              enable_model_summary=False, limit_val_batches=1).validate(model, datamodule=cli.datamodule, verbose=False)
    outputs, batch = cap.outputs[0]
    assert PROTOCOL[direction] <= set(outputs)

    # the checkpoint rebuilds the same model from the core alone (weights_only, no LightningModule)
    path = tmp_path / "model.ckpt"
    cli.trainer.save_checkpoint(path)
    ck = Checkpoint.read(path, direction=direction)
    assert ck.meta["module"] == module and ck.meta["inference"] == model.inference_class
    loaded, live = load_predictor(path, direction=direction), model.to_inference().eval()
    batch = {k: (v[:1] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}
    with torch.no_grad():
        if direction == "mri2audio":
            torch.testing.assert_close(loaded.predict(batch["mri"])[0], live.predict(batch["mri"])[0])
        elif direction == "uti2contour":
            frames = batch["image"][:, 0]
            torch.testing.assert_close(loaded(frames, probe="bottom")[0], live(frames, probe="bottom")[0])
        else:
            n = batch["video"].shape[2] + 2 * live.condition_context  # the clip and its speech context
            feats = live.audio_features(batch["audio"], n_frames=n)
            text = list(batch["text"])
            a = live.generate(feats, *live.text_features(text), generator=torch.Generator().manual_seed(0))
            b = loaded.generate(loaded.audio_features(batch["audio"], n_frames=n),
                                *loaded.text_features(text), generator=torch.Generator().manual_seed(0))
            torch.testing.assert_close(a, b)
