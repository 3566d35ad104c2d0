"""Test helpers shared by the suite: tiny data, tiny configs and fits through the real CLI.

Every direction's tests train the shipped configs with tiny network and data sizes on top, so an
end-to-end fit takes seconds: the structure (components, links, callbacks) is the real one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def stack(direction: str, overlay: str | None = None) -> list[Path]:
    """The config files an overlay of ``configs/<direction>/`` is meant to be layered with, in the registry's
    order: the stack that ends with it (a preset's last overlay, a variant, or a variant's overlay under a preset,
    as the direction record names them)."""
    from articulate.directions import get_direction

    d = get_direction(direction)
    if overlay is None:
        return [ROOT / f for f in d.config_stack()]
    name = overlay.removesuffix(".yaml")
    candidates = [((), p) for p in d.presets] + [((v,), None) for v in d.variants]
    candidates += [((v,), p) for p, preset in d.presets.items() for v in preset.variants]
    for variants, preset in candidates:
        files = d.config_stack(variants, preset)
        if files[-1] == d.overlay(name):
            return [ROOT / f for f in files]
    raise KeyError(f"{direction}: no stack of the registry ends with {overlay}")


def config_value(path: str, *keys: str) -> Any:
    """A value of a shipped config file (``configs/...``), e.g. ``config_value("configs/mri2audio.yaml", "model",
    "init_args", "lambdas")``."""
    node = yaml.safe_load((ROOT / path).read_text())
    for key in keys:
        node = node[key]
    return node


def config_callable(spec: dict[str, Any]):
    """An optimizer or scheduler callable from its YAML form (``class_path`` + ``init_args``), as LightningCLI
    builds it: the class with those arguments, waiting for the parameters (or the optimizer)."""
    import functools
    import importlib

    module, _, name = spec["class_path"].rpartition(".")
    return functools.partial(getattr(importlib.import_module(module), name), **(spec.get("init_args") or {}))


def config_args(files: list[Path]) -> list[str]:
    return [a for f in files for a in ("--config", str(f))]


def fit_in_process(configs: list[Path], extra: list[str] = ()) -> Any:
    """``articulate fit`` in this process (single-threaded: tiny tensors); returns the CLI object."""
    from articulate.training.lightning_cli import ArticulateCLI

    torch.set_num_threads(1)
    return ArticulateCLI(args=["fit", *config_args(configs), *extra])


def quiet_trainer(tmp: Path, ckpt_dir: Path | None = None, **extra: Any) -> dict[str, Any]:
    """A CPU trainer section without logger or progress bar; checkpoints (last.ckpt) in ``ckpt_dir`` if given."""
    trainer = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
               "enable_model_summary": False, "num_sanity_val_steps": 0, "default_root_dir": str(tmp / "run")}
    if ckpt_dir is None:
        trainer.update(enable_checkpointing=False, callbacks=[])
    else:
        trainer["callbacks"] = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                 "init_args": {"dirpath": str(ckpt_dir), "save_last": True}}]
    trainer.update(extra)
    return trainer


def write_yaml(path: Path, content: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content))
    return path


# ---------------------------------------------------------------------------------------------
# mri2audio: a 4-subject phantom (1 test, 1 validation, 2 training subjects: pairs need two) on a
# 26 x 32 x 32 grid, and the paper's networks at toy width.

MRI_TINY_DATA = {"phantom": {"subjects": 4}, "split": {"kind": "loso", "val_subjects": 1}, "fold": 0,
                 "crops": {"train": 2, "eval": 1}, "size": 32, "batch_size": 2, "num_workers": 0}
MRI_TINY_NETS = {
    "translator": {"init_args": {"encoder_channels": [4, 8, 8, 16, 28], "decoder_channels": [8, 8, 4],
                                 "utterance_channels": 4, "subject_channels": 20}},
    "attention": {"init_args": {"channels": [4, 4, 8, 8]}},
    "discriminator": {"init_args": {"channels": [4, 8, 8], "hidden": 8}},
}


def mri_tiny_overlay(path: Path, nets: dict[str, Any] = MRI_TINY_NETS, **trainer: Any) -> Path:
    """A config overlay at ``path``: the tiny phantom cohort, the networks ``nets`` (model init_args), ``trainer``."""
    return write_yaml(path, {"trainer": trainer, "model": {"init_args": nets}, "data": {"init_args": MRI_TINY_DATA}})


LIP2AUDSPEC_TINY = {"network": {"init_args": {"window_stride": 7, "conv_channels": [2, 2, 2, 4, 4, 4, 4],
                                              "lstm_hidden": 8, "dense": 16}}}


# ---------------------------------------------------------------------------------------------
# wav2uti: a generated UltraSuite-layout cohort whose tongue depth is coded in the audio pitch.

def make_cohort(root: Path, speakers: int = 5, utterances: int = 3, seconds: float = 1.2, fps: float = 60.0,
                sr: int = 16000, vectors: int = 32, pixels: int = 64, seed: int = 0) -> Path:
    """A tiny UltraSuite-layout cohort whose tongue depth is coded in the audio pitch (learnable).

    The bright echo line of frame k sits at sample depth ``d_k``; the audio over that frame's
    interval is a tone of ``300 + 40 d_k`` Hz. Ultrasound starts 0.1 s after the audio.
    """
    from articulate.readers.ultrasound import UltrasoundParams, write_utterance

    rng = np.random.default_rng(seed)
    tff = 0.1
    for s in range(speakers):
        for u in range(utterances):
            n = int(seconds * fps)
            t = np.arange(n) / fps
            depth = 12 + 8 * np.sin(2 * np.pi * (0.7 + 0.3 * u + 0.1 * s) * t + s)
            scan = rng.integers(0, 30, size=(n, vectors, pixels)).astype(np.float32)
            j = np.arange(pixels)
            scan += 220 * np.exp(-0.5 * ((j[None, None, :] - depth[:, None, None]) / 1.5) ** 2)
            scan = np.clip(scan, 0, 255).astype(np.uint8)
            total = int((tff + seconds + 0.1) * sr)
            ts = np.arange(total) / sr
            k = np.clip(((ts - tff) * fps).astype(int), 0, n - 1)
            freq = 300 + 40 * depth[k]
            audio = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / sr).astype(np.float32)
            params = UltrasoundParams(num_vectors=vectors, pix_per_vector=pixels, zero_offset=20, bits_per_pixel=8,
                                      angle=0.03, kind=0, pixels_per_mm=10.0, fps=fps, time_first_frame=tff)
            write_utterance(root / f"spk{s}" / f"utt{u}", scan, params, audio, sr, f"word {u} said by {s}",
                            speaker=f"spk{s}")
    return root


def wav2uti_tiny_override(cohort: Path, name: str | None, tmp: Path, ckpt_dir: Path | None = None) -> Path:
    """Tiny network / data sizes on top of a wav2uti overlay (same structure, seconds per fit). Sizes shared
    by data and model are given once, in the data section (the CLI links them)."""
    res = {"res96.yaml": 24, "res112.yaml": 28}.get(name or "", 16)  # keeps the SR stage's 3/2 and 7/4 ratios
    dnn = name is not None and name.startswith("dnn")
    trainer = quiet_trainer(tmp, ckpt_dir, max_steps=2, limit_train_batches=2, limit_val_batches=1, val_check_interval=2)
    model: dict = {}
    if dnn:
        model["network"] = {"init_args": {"hidden": 32, "num_layers": 2, "context": 2}}
    else:
        model["evaluation"] = {"val_clips": 2}
        model["cascade"] = {"low_res_size": res // 2 if name in ("res96.yaml", "res112.yaml") else 64}
        model["sampler"] = {"init_args": {"num_steps": 2}}
        model["denoiser"] = {"init_args": {"net": {"init_args": {
            "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attn_resolutions": [],
            "cross_attn_resolutions": [8], "temporal": "conv", "num_heads": 2}}}}
        model["fusion"] = {"init_args": {"cond_dim": 16}}
        if name not in ("audio_only.yaml", "audio_only_quick.yaml", "paper_encoders.yaml"):
            model["fusion"]["init_args"].update(num_heads=2, num_layers=1)
            model["text_encoder"] = {"init_args": {"dim": 16, "num_layers": 1, "num_heads": 2, "vocab_size": 256}}
    data = {"data_dir": str(cohort), "phantom": None, "clips": {"resolution": res, "frames": 4}, "batch_size": 2,
            "num_workers": 0, "split": {"test_subjects": 1, "val_subjects": 1}, "max_eval_clips": 4,
            "feature_cache_dir": str(tmp / "features")}
    if name == "realdata_quick.yaml":  # speaker-dependent time blocks of 0.5-s recordings: each part holds a clip
        data["split"].update(val_fraction=0.3, test_fraction=0.3)
    return write_yaml(tmp / "tiny.yaml", {"trainer": trainer, "model": {"init_args": model}, "data": {"init_args": data}})


# ---------------------------------------------------------------------------------------------
# callbacks the fault tests add to real fits (``--trainer.callbacks+=helpers.<Name>``)

import lightning as _L  # noqa: E402 - kept beside the callbacks that need it


class PoisonAt(_L.Callback):
    """Fill the first trainable parameter with NaN before training batch ``batch`` (a diverged step)."""

    def __init__(self, batch: int = 1):
        self.batch = int(batch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.batch:
            with torch.no_grad():
                next(p for p in pl_module.parameters() if p.requires_grad).fill_(float("nan"))


class SaveAndStopAt(_L.Callback):
    """Save a checkpoint after training batch ``batch`` (as ``every_n_train_steps`` would) and stop the fit
    (or, with ``stop`` false, go on: a mid-epoch checkpoint of an uninterrupted fit)."""

    def __init__(self, batch: int, path: str, stop: bool = True):
        self.batch, self.path, self.stop = int(batch), path, bool(stop)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx + 1 == self.batch:
            trainer.save_checkpoint(self.path)
            if self.stop:
                trainer.should_stop = True
