"""The direction registry: what the tools, the CLI, the Makefile loops and the checks know about each direction.

A direction (mri2audio, wav2uti, uti2contour, ...) is a plugin: its own LightningModule, DataModule,
networks, configs, inference object and tools, described by one :class:`Direction` record in a
module of this package. Registering it is one line: its module name in ``BUILTIN`` (or a call to
:func:`register`, e.g. from a test or another package). Nothing else in the project lists
directions: ``articulate --help``, ``articulate phantom``, the checkpoint checks, the config-stack
order, ``make train-<name>``, the reproduction and the bench read this registry.

The records hold class and function paths as strings, so reading the registry imports neither
torch nor the framework layers (the core must not import them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Direction", "Link", "Preset", "register", "unregister", "get_direction", "directions", "direction_of_module",
           "tools", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The built-in directions, in the order the tools list them. Adding a direction: one line here.
BUILTIN = (
    "articulate.directions.mri2audio",
    "articulate.directions.wav2uti",
    "articulate.directions.uti2contour",
)


@dataclass(frozen=True)
class Link:
    """A LightningCLI ``link_arguments``: ``target`` always takes its value from ``source`` (one source
    per value). Links whose source or target the chosen classes lack are skipped by the parser."""

    source: str | tuple[str, ...]
    target: str
    compute: Callable | None = None


@dataclass(frozen=True)
class Preset:
    """A named set of overlays (``configs/<direction>/<name>.yaml``, in order) and, for the variants that need one
    under this preset, the overlays each takes after its own (e.g. mri2audio's ``lip2audspec_quick``).
    ``needs``: options the command line must give (e.g. a real-data preset's ``data.init_args.data_dir``).
    ``default_variants``: what ``articulate train`` trains under this preset when the command line names no
    ``--variant`` (e.g. wav2uti's QUICK preset: the variant that learns to use its speech within the CPU budget);
    naming any variant replaces them."""

    overlays: tuple[str, ...]
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    default_variants: tuple[str, ...] = ()

    def missing(self, argv: list[str]) -> list[str]:
        """The ``needs`` that ``argv`` (command-line overrides) does not give; a further ``--config`` may give them."""
        if any(a in ("--config", "-c") or a.startswith("--config=") for a in argv):
            return []
        given = {a.split("=", 1)[0].lstrip("-").replace(".init_args.", ".") for a in argv if a.startswith("--")}
        return [n for n in self.needs if n.replace(".init_args.", ".") not in given]


QUICK = Preset(("quick",))


@dataclass(frozen=True)
class Direction:
    """One direction of translation and everything the framework needs to know about it.

    Args:
        name: the direction's name (checkpoints store it; ``make train-<name>``).
        summary: one line for listings.
        modalities: dataset-index kinds its DataModule reads (``articulate.readers.dataset_index.KINDS``).
        phantom: the phantom cohort it trains on when no data is given (``articulate phantom <kind>``).
        config: the paper (or default) configuration, relative to the project root.
        inference: its LightningModule class paths -> the inference class (``articulate.inference``) that
            rebuilds their checkpoints from the core alone; a checkpoint's class tells its direction.
        tools: CLI tools it adds: name -> (module with ``main(argv)``, one-line help).
        links: values shared by DataModule and model (or by two components), set in one place.
        presets: named presets (:class:`Preset`), e.g. ``{"quick": Preset(("quick",))}`` ->
            ``configs/<name>/quick.yaml``, with the overlays a variant takes under each.
        variants: the variant overlays (``configs/<name>/<variant>.yaml``) ``--variant`` may name.
        reproduce: ``module:object``, its :class:`articulate.experiments.reproduce.Reproduction` (the options of
            ``articulate reproduce <name>`` and the plan built from them).
        bench: ``module:function`` returning the bench sections.
        packages: module prefixes (``"my_plugin."``) outside ``articulate.`` whose classes this direction's
            checkpoints may name (a plugin's networks and inference class); nothing else is imported from a file.
        prepare: ``module:function(preset, variants, args) -> list[str]``: fit arguments ``articulate train`` adds
            (e.g. a measuring tool its test pass needs, made once and cached).
    """

    name: str
    summary: str
    modalities: tuple[str, ...]
    phantom: str | None
    config: str
    inference: dict[str, str]
    tools: dict[str, tuple[str, str]] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    presets: dict[str, Preset] = field(default_factory=lambda: {"quick": QUICK})
    variants: tuple[str, ...] = ()
    reproduce: str | None = None
    bench: str | None = None
    packages: tuple[str, ...] = ()
    prepare: str | None = None

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self.inference)

    def overlay(self, name: str) -> str:
        return f"configs/{self.name}/{name}.yaml"

    def config_stack(self, variants: Iterable[str] = (), preset: str | None = None) -> list[str]:
        """The ``--config`` files in the one order every caller uses: the direction's config, the
        preset's overlays, then each variant followed by the overlays the preset names for it
        (e.g. ``lip2audspec_quick.yaml`` after ``lip2audspec.yaml``). Only what the record names."""
        if preset and preset not in self.presets:
            raise KeyError(f"{self.name} has no preset {preset!r} (presets: {', '.join(self.presets) or 'none'})")
        chosen = self.presets[preset] if preset else Preset(())
        stack = [self.config, *(self.overlay(p) for p in chosen.overlays)]
        for variant in variants:
            if variant not in self.variants:
                raise KeyError(f"{self.name} has no variant {variant!r} (variants: {', '.join(self.variants) or 'none'})")
            stack += [self.overlay(variant), *(self.overlay(v) for v in chosen.variants.get(variant, ()))]
        return stack

    def train_variants(self, variants: Iterable[str] = (), preset: str | None = None) -> list[str]:
        """The variants ``articulate train`` stacks: those named, else the preset's ``default_variants``."""
        named = list(variants)
        if named or not preset or preset not in self.presets:
            return named
        return list(self.presets[preset].default_variants)

    def overlays(self) -> set[str]:
        """Every overlay name the record names (presets, variants, a variant's overlays under a preset)."""
        names = set(self.variants)
        for p in self.presets.values():
            names |= set(p.overlays) | set(p.default_variants) | {v for extra in p.variants.values() for v in extra}
        return names


_REGISTRY: dict[str, Direction] = {}
_LOADED = False


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in BUILTIN:
        register(importlib.import_module(module).DIRECTION)


def register(direction: Direction) -> Direction:
    """Add a direction (replacing one of the same name)."""
    _load_builtin()
    _REGISTRY[direction.name] = direction
    return direction


def unregister(name: str) -> None:
    _load_builtin()
    _REGISTRY.pop(name, None)


def directions() -> list[Direction]:
    _load_builtin()
    return list(_REGISTRY.values())


def get_direction(name: str) -> Direction:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown direction {name!r}; known: {', '.join(_REGISTRY)}") from None


def direction_of_module(class_path: str) -> str | None:
    """The direction whose LightningModules include ``class_path`` (None if no direction lists it)."""
    for d in directions():
        if class_path in d.modules:
            return d.name
    return None


def trusted_packages() -> tuple[str, ...]:
    """Module prefixes registered directions declare for the classes their checkpoints name."""
    return tuple(p for d in directions() for p in d.packages)


def tools() -> dict[str, tuple[str, str]]:
    """Every direction's CLI tools: name -> (module, help)."""
    out: dict[str, tuple[str, str]] = {}
    for d in directions():
        for name, entry in d.tools.items():
            if name in out:
                raise ValueError(f"tool {name!r} is registered by two directions")
            out[name] = entry
    return out


def resolve(path: str) -> Any:
    """``package.module:name`` -> the function or object it names."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
