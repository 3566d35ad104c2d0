"""Components from their YAML form (``class_path`` + ``init_args``), for files we do not trust.

A checkpoint's hyperparameters name the classes that rebuild its networks. Importing and calling
an arbitrary name is running code (``os.system`` is a callable too), so :func:`instantiate` only
imports modules of this project's core (``articulate.*``), and only builds ``torch.nn.Module``
subclasses or classes the core marks as components (samplers, losses). Anything else is an
``InputError`` naming the file, before any import happens.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from articulate.errors import InputError

log = logging.getLogger(__name__)

# Module prefixes a checkpoint may name. The framework layers (lightning_modules...) are not here:
# inference rebuilds networks from the core alone. Plugin directions add theirs (Direction.packages).
CORE_PREFIXES = ("articulate.",)


# Constructor options that were measured, helped nothing and were removed (docs/experiments/<direction>.md), each
# with the value under which it changed nothing. A checkpoint or config that recorded that value still builds
# (the key is dropped, one warning line names them); any other value is refused with one line: the model was
# trained with something this version cannot rebuild.
REMOVED_OPTIONS: dict[str, dict[str, Any]] = {
    "articulate.networks.mri2audio.translator.HeterogeneousTranslator": {
        "output_bias": False, "norm": "none", "input_norm": "none", "time_axis": False, "input_scale": 1.0},
    "articulate.networks.mri2audio.frame_translator.FrameTranslator": {"output_bias": False, "input_scale": 1.0},
    "articulate.networks.mri2audio.attention.ResidualAttention": {"closed": "dark"},
    # LightningModules (a checkpoint's hyperparameters, which `--ckpt_path` applies to the config)
    "lightning_modules.mri2audio_translator.MRI2AudioTranslator": {
        "mask_sparsity": 0.0, "mask_sparsity_start": 0, "init_output_bias": True, "lr_schedule": "constant",
        "oracle_mask": None},
    "lightning_modules.uti2contour.ContourHeatmapModule": {"coord_weight": 0.0, "coord_beta": 20.0},
    "lightning_modules.wav2uti_diffusion.Wav2UTIDiffusion": {"long_form_hop": None, "val_seed": 0},
}


# Constructor options since grouped into a settings dataclass, by their new place ("group.field"): a checkpoint
# that names the old flat option is read as the new one (same value, same model).
_W2U_CLIPS = {"resolution": "clips.resolution", "clip_frames": "clips.frames", "fps": "clips.fps",
              "condition_context": "clips.context", "val_num_clips": "evaluation.val_clips",
              "contour_ckpt": "evaluation.contour_ckpt", "contour_threshold": "evaluation.contour_threshold"}
MOVED_OPTIONS: dict[str, dict[str, str]] = {
    "lightning_modules.wav2uti_diffusion.Wav2UTIDiffusion": {
        **_W2U_CLIPS, "stage": "cascade.stage", "low_res_size": "cascade.low_res_size",
        "aug_sigma_max": "cascade.aug_sigma_max", "sample_aug_sigma": "cascade.sample_aug_sigma",
        "low_res_ckpt": "cascade.low_res_ckpt", "cond_drop_prob": "guidance.drop_prob",
        "guidance_scale": "guidance.scale", "guidance_candidates": "guidance.candidates"},
    "lightning_modules.wav2uti_dnn.Wav2UTIDNN": _W2U_CLIPS,
}


def move_grouped_options(class_path: str, init_args: dict[str, Any]) -> dict[str, Any]:
    """``init_args`` with the flat options of :data:`MOVED_OPTIONS` moved into their groups."""
    moved = MOVED_OPTIONS.get(class_path, {})
    out: dict[str, Any] = {}
    for key, value in init_args.items():
        if key in moved:
            group, field = moved[key].split(".")
            out[group] = {**(out.get(group) or {}), field: value}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**value, **out[key]}  # a group given both ways: the flat value (what the old version read) wins
        else:
            out[key] = value
    return out


def drop_removed_options(class_path: str, init_args: dict[str, Any], source: str | Path | None = None
                         ) -> tuple[dict[str, Any], list[str]]:
    """``init_args`` without the options ``class_path`` no longer takes (see :data:`REMOVED_OPTIONS`) and the
    names dropped; an InputError when one of them holds a value other than the one under which it did nothing."""
    removed = REMOVED_OPTIONS.get(class_path, {})
    init_args = move_grouped_options(class_path, init_args)
    kept, dropped, refused = {}, [], []
    for key, value in init_args.items():
        if key not in removed:
            kept[key] = value
        elif value == removed[key]:
            dropped.append(key)
        else:
            refused.append(f"{key}={value!r}")
    if refused:
        raise InputError(source, f"{class_path.rsplit('.', 1)[-1]} was saved with {', '.join(refused)}: "
                                 f"{'an option' if len(refused) == 1 else 'options'} this version no longer takes "
                                 "(docs/experiments/ says why); it cannot rebuild that model: use the release that trained it")
    return kept, dropped


def drop_removed_in(value: Any, source: str | Path | None, dropped: list[str]) -> Any:
    """``value`` with the removed options of every ``class_path`` spec inside it dropped (:func:`drop_removed_options`;
    their names added to ``dropped``)."""
    if isinstance(value, list):
        return [drop_removed_in(v, source, dropped) for v in value]
    if not isinstance(value, dict):
        return value
    if is_spec(value) and isinstance(value.get("init_args"), dict):
        init_args, gone = drop_removed_options(str(value["class_path"]), value["init_args"], source)
        dropped += [f"{str(value['class_path']).rsplit('.', 1)[-1]}.{k}" for k in gone]
        value = {**value, "init_args": init_args}
    return {k: drop_removed_in(v, source, dropped) for k, v in value.items()}


def warn_dropped(source: str | Path | None, dropped: list[str]) -> None:
    """The one warning line for options dropped from a saved configuration."""
    if dropped:
        log.warning("%s: ignoring %s: option%s this version removed, saved at the value under which %s nothing",
                    source or "configuration", ", ".join(dropped), "s" if len(dropped) > 1 else "",
                    "they changed" if len(dropped) > 1 else "it changed")


def trusted_prefixes() -> tuple[str, ...]:
    from articulate.directions import trusted_packages

    return CORE_PREFIXES + trusted_packages()


def _allowed(class_path: str, prefixes: tuple[str, ...]) -> bool:
    return any(class_path.startswith(p) for p in prefixes) and ".." not in class_path


def import_class(class_path: str, source: str | Path | None = None, prefixes: tuple[str, ...] | None = None) -> type:
    """The class named ``class_path`` (``package.module.Class``), refused unless it lies under ``prefixes``
    (default: the core and the registered directions' packages)."""
    prefixes = trusted_prefixes() if prefixes is None else prefixes
    if not isinstance(class_path, str) or not _allowed(class_path, prefixes):
        raise InputError(source, f"refusing class {class_path!r}: only {', '.join(p + '*' for p in prefixes)} "
                                 "classes are built from a file")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise InputError(source, f"class {class_path} is not available in this installation "
                                 "(a checkpoint of another version, or a misspelt class_path)") from None
    if not isinstance(cls, type):
        raise InputError(source, f"{class_path} is not a class")
    return cls


def is_component(cls: type) -> bool:
    """nn.Modules, and core classes that declare themselves components (``component = True``)."""
    import torch.nn as nn

    return issubclass(cls, nn.Module) or bool(getattr(cls, "component", False))


def is_spec(value: Any) -> bool:
    return isinstance(value, dict) and "class_path" in value


def instantiate(spec: Any, source: str | Path | None = None, prefixes: tuple[str, ...] | None = None) -> Any:
    """Build ``{"class_path": ..., "init_args": {...}}`` (nested specs too); other values pass through. Options
    a class no longer takes are dropped (one warning line) or refused (:func:`drop_removed_options`)."""
    dropped: list[str] = []
    built = _instantiate(spec, source, trusted_prefixes() if prefixes is None else prefixes, dropped)
    warn_dropped(source, dropped)
    return built


def _instantiate(spec: Any, source: str | Path | None, prefixes: tuple[str, ...], dropped: list[str]) -> Any:
    if isinstance(spec, list):
        return [_instantiate(v, source, prefixes, dropped) for v in spec]
    if not is_spec(spec):
        return spec
    cls = import_class(spec["class_path"], source, prefixes)
    if not is_component(cls):
        raise InputError(source, f"refusing class {spec['class_path']}: not a network or component class")
    init_args, gone = drop_removed_options(spec["class_path"], dict(spec.get("init_args") or {}), source)
    dropped += [f"{spec['class_path'].rsplit('.', 1)[-1]}.{k}" for k in gone]
    kwargs = {k: _instantiate(v, source, prefixes, dropped) for k, v in init_args.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise InputError(source, f"cannot build {spec['class_path']}: {err}") from None
