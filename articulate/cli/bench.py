"""`articulate bench [--quick] [--out results/bench.json] [--device cpu|cuda]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from articulate.utils.atomic import atomic_path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="articulate bench", description=__doc__)
    parser.add_argument("--out", default="results/bench.json", help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="few steps and short videos (a smoke run of every figure)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    args = parser.parse_args(argv)

    from articulate.experiments.bench import run_benchmarks, summary_rows

    result = run_benchmarks(quick=args.quick, device=args.device)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    width = max(len(k) for k, _ in summary_rows(result))
    env = result["environment"]
    print(f"\nArticulate benchmarks on {env.get('gpu', 'CPU')} ({env['cpu_threads']} threads), torch {env['torch']}"
          + (" [QUICK]" if args.quick else ""))
    for key, value in summary_rows(result):
        print(f"  {key:<{width}}  {value}")
    print(f"\nwritten: {out}")
    return 0
