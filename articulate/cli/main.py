"""`articulate` entry point.

LightningCLI subcommands (fit / validate / test / predict) go to :mod:`articulate.training.lightning_cli`;
tool subcommands (inspect, phantom, synthesize-*, score, ...) are modules of this package with a
``main(argv) -> int`` function, imported lazily so ``articulate inspect`` does not import torch
models it does not need.
"""

from __future__ import annotations

import importlib
import sys

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

# Tools every direction shares: name -> (module, one-line help). A direction's own tools (synthesize-*,
# track-contours, ...) come from its record in the direction registry (articulate.directions).
COMMON_TOOLS: dict[str, tuple[str, str]] = {
    "inspect": ("articulate.cli.inspect", "show what the readers see in a file or dataset folder"),
    "phantom": ("articulate.cli.phantom", "write a synthetic articulatory-phantom dataset in real file formats"),
    "score": ("articulate.cli.score", "score predicted files against references (Corr2D, PESQ, LPIPS, FID, FVD, RMSE, PSNR)"),
    "bench": ("articulate.cli.bench", "speed and memory benchmarks -> JSON"),
    "reproduce": ("articulate.cli.reproduce", "reproduce a paper's table on the phantom (or your data)"),
    "train": ("articulate.cli.train", "fit a direction's configuration (+ preset and variants) and test it"),
    "directions": ("articulate.cli.directions", "list the registered directions, their configs, presets and tools"),
}


def tools() -> dict[str, tuple[str, str]]:
    from articulate.directions import tools as direction_tools

    return {**COMMON_TOOLS, **direction_tools()}


def _usage() -> str:
    lines = [
        "usage: articulate <command> [options]",
        "",
        "training (LightningCLI; see `articulate fit --help`):",
        "  fit | validate | test | predict   --config configs/X.yaml [--trainer.devices N ...]",
        "",
        "tools:",
    ]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in tools().items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # Before torch is imported: allocator and OpenMP defaults (articulate/training/runtime.py says why).
    from articulate.training.runtime import configure

    configure()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command in LIGHTNING_SUBCOMMANDS:
        from articulate.training.lightning_cli import run_lightning_cli

        return run_lightning_cli(argv)
    known = tools()
    if command not in known:
        print(f"articulate: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = known[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(f"articulate {command}: not built yet", file=sys.stderr)
        return 2
    from articulate.errors import ArticulateError
    from articulate.utils import progress
    from articulate.utils.atomic import disk_error_line
    from articulate.validate import reset_warnings

    reset_warnings()
    progress.activate(f"articulate {command}")  # long loops inside (the sampler's steps) report progress
    try:
        return int(module.main(rest) or 0)
    except ArticulateError as err:
        print(f"articulate {command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        line = disk_error_line(err)  # a write outside the atomic helpers (a folder, a log): one line naming the place
        if line is None:
            raise
        print(f"articulate {command}: error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\narticulate {command}: interrupted (outputs are written whole or not at all)", file=sys.stderr)
        return 130
    finally:
        progress.deactivate()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
