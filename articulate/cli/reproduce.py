"""`articulate reproduce DIRECTION [--quick] [--out DIR] [--seeds N] [direction options]`: a paper's table, resumable.

The direction's record names its reproduction (``Direction.reproduce``: an
:class:`articulate.experiments.reproduce.Reproduction`), which adds its own options (``articulate reproduce
<direction> --help`` lists them) and builds the plan; this command only parses and runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser(direction: str | None = None) -> argparse.ArgumentParser:
    from articulate.directions import directions, get_direction, resolve
    from articulate.training import options as opt

    parser = opt.Parser(prog="articulate reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("direction", choices=[d.name for d in directions() if d.reproduce])
    parser.add_argument("--quick", action="store_true", help="the small CPU preset (about an hour per direction on 2 cores)")
    opt.path(parser, "--out", role="output", default=None, help="results folder (default results/<direction>[_quick])")
    opt.number(parser, "--seeds", integer=True, low=1, high=100, default=3,
               help="random trials (default 3 as the papers; the paired tests need them)")
    parser.add_argument("--logger", choices=["csv", "wandb"], default="csv", help="per-run logger")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides for every run, e.g. --data.init_args.data_dir=/data")
    if direction is not None:
        resolve(get_direction(direction).reproduce).add_arguments(parser.add_argument_group(f"{direction} options"))
    return parser


def main(argv: list[str]) -> int:
    from articulate.directions import directions, get_direction, resolve
    from articulate.experiments import reproduce as rp

    first = argparse.ArgumentParser(add_help=False)  # the direction first: it brings its own options
    first.add_argument("direction", nargs="?")
    known, _ = first.parse_known_args(argv)
    registered = {d.name for d in directions() if d.reproduce}
    args, unknown = build_parser(known.direction if known.direction in registered else None).parse_known_args(argv)
    extra = list(args.overrides) + unknown
    plan = resolve(get_direction(args.direction).reproduce).plan(args, extra)
    out = Path(args.out or f"results/{args.direction}{'_quick' if args.quick else ''}")
    summary = rp.reproduce(plan, out, extra_args=extra, logger=args.logger)
    print((out / "table.md").read_text())
    print(f"written: {out / 'table.md'}, {out / 'table.csv'}, {out / 'metrics.png'} ({summary['seconds']} s)")
    return 0
