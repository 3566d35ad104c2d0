"""``articulate train DIRECTION [--quick | --preset P] [--variant V ...] [fit options]``.

``articulate fit`` over the direction's config stack in the one order the registry defines
(``Direction.config_stack``: the direction's config, the preset's overlays, each variant with its
preset companion; with no ``--variant``, the preset's ``default_variants``), ending with a test pass on the
held-out split. The ``make train-<direction>`` targets call it; anything after the known options goes to
``articulate fit`` unchanged, e.g. ``--trainer.devices 4 --trainer.strategy ddp`` or ``--data.init_args.data_dir /data``.
"""

from __future__ import annotations

import argparse
import sys

from articulate.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    from articulate.training.options import Parser

    p = Parser(prog="articulate train", description=__doc__.split("\n\n")[0])
    p.add_argument("direction", help="a registered direction (`articulate directions` lists them)")
    p.add_argument("--quick", action="store_true", help="the CPU preset (same as --preset quick)")
    p.add_argument("--preset", default=None, help="a named preset of the direction")
    p.add_argument("--variant", action="append", default=[], help="a variant overlay configs/<direction>/<name>.yaml")
    p.add_argument("--no-test", action="store_true", help="do not end with the held-out test pass")
    return p


def fit_args(direction: str, preset: str | None = None, variants: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The ``--config`` arguments of a direction's stack (the project's packaged configs, found from any folder)."""
    from articulate.directions import get_direction
    from articulate.paths import resolve_config

    try:
        d = get_direction(direction)
        stack = d.config_stack(variants, preset)
    except KeyError as err:
        raise InputError(None, str(err).strip("'\"")) from None
    args: list[str] = []
    for cfg in stack:
        args += ["--config", resolve_config(cfg)]
    return args


def main(argv: list[str]) -> int:
    args, rest = build_parser().parse_known_args(argv)
    preset = args.preset or ("quick" if args.quick else None)
    from articulate.directions import get_direction, resolve
    from articulate.training.lightning_cli import run_lightning_cli

    try:  # one lookup: an unknown direction is one line whatever the options
        record = get_direction(args.direction)
    except KeyError as err:
        raise InputError(None, str(err).strip("'\"")) from None
    if preset is not None:
        missing = record.presets[preset].missing(rest) if preset in record.presets else []
        if missing:
            raise InputError(None, f"the {preset} preset needs {', '.join('--' + m for m in missing)} on the command line "
                                   "(e.g. the folder of your recordings)")

    variants = record.train_variants(args.variant, preset)
    if variants != args.variant:  # on stderr: --print_config's YAML on stdout stays a config
        print(f"[articulate] the {preset} preset trains --variant {' --variant '.join(variants)} "
              "(name a variant to train another)", file=sys.stderr, flush=True)
    fit = ["fit", *fit_args(args.direction, preset, variants)]
    if not args.no_test:
        fit += ["--test_after_fit", "true"]
        # e.g. wav2uti on the phantom: the contour tracker its test pass needs (not for --print_config: no fit)
        if record.prepare and not any(a.startswith("--print_config") for a in rest):
            fit += resolve(record.prepare)(preset, variants, rest)
    return run_lightning_cli(fit + rest)
