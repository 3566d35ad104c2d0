"""``articulate directions [--json]``: the registered directions and what each brings."""

from __future__ import annotations

import argparse
import json


def build_parser() -> argparse.ArgumentParser:
    try:  # `make help` runs this file with the system Python before .venv exists: plain argparse then
        from articulate.training.options import Parser
    except ImportError:  # pragma: no cover
        Parser = argparse.ArgumentParser  # noqa: N806
    p = Parser(prog="articulate directions", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--names", action="store_true", help="only the names, one per line (for scripts and make)")
    p.add_argument("--phantoms", action="store_true", help="only the phantom cohort kinds the directions use")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from articulate.directions import directions

    rows = [{"name": d.name, "summary": d.summary, "config": d.config, "presets": sorted(d.presets),
             "phantom": d.phantom, "modalities": list(d.modalities), "tools": sorted(d.tools),
             "modules": list(d.modules)} for d in directions()]
    if args.phantoms:
        print("\n".join(dict.fromkeys(r["phantom"] for r in rows if r["phantom"])))
    elif args.names:
        print("\n".join(r["name"] for r in rows))
    elif args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']}: {r['summary']}\n  config {r['config']} (presets: {', '.join(r['presets']) or '-'}); "
                  f"phantom {r['phantom']}; tools: {', '.join(r['tools']) or '-'}")
    return 0


if __name__ == "__main__":  # `make help` runs it with the system Python (stdlib only), before .venv exists
    import sys

    sys.exit(main(sys.argv[1:]))
