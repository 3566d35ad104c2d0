"""`articulate bench [--quick] [--out results/bench.json] [--device cpu|cuda] [--direction D ...] [--only SECTION ...]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from articulate.utils.atomic import atomic_path

SECTIONS = ("train", "train_quick", "inference", "flops", "sampling", "synthesis_memory", "memory", "gpu_check")


def build_parser() -> argparse.ArgumentParser:
    from articulate.training import options as opt

    parser = opt.Parser(prog="articulate bench", description=__doc__)
    opt.path(parser, "--out", role="output", default="results/bench.json", help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="few steps and short videos; memory estimated from "
                        "batch-1/2 probes (a smoke run of every figure)")
    opt.device(parser, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--direction", action="append", default=[], help="only this registered direction (repeatable)")
    parser.add_argument("--only", action="append", default=[], choices=SECTIONS,
                        help="only this section (repeatable; train includes data loading; gpu_check runs only when named: "
                             "the paper configs on a GPU, make gpu-check)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from articulate.utils import progress

    progress.deactivate()  # no progress bars inside the timed loops
    if args.device not in (None, "cpu", "cuda"):
        from articulate.errors import InputError

        raise InputError(None, f"--device {args.device}: the bench runs on cpu or cuda (the default CUDA device)")
    from articulate.utils.atomic import check_output

    check_output(args.out)  # refused before minutes of benchmarks

    from articulate.experiments.bench import run_benchmarks, summary_rows

    result = run_benchmarks(quick=args.quick, device=args.device, directions=tuple(args.direction), only=tuple(args.only))
    out = Path(args.out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    rows = summary_rows(result)
    width = max((len(k) for k, _ in rows), default=0)
    env = result["environment"]
    print(f"\nArticulate benchmarks on {env.get('gpu', 'CPU')} ({env['cpu_threads']} threads, load average "
          f"{env.get('load_average')} -> {env.get('load_average_end')}), torch {env['torch']}" + (" [QUICK]" if args.quick else ""))
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(f"\nwritten: {out}")
    return 0
