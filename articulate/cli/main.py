"""`articulate` entry point.

LightningCLI subcommands (fit / validate / test / predict) go to :mod:`articulate.cli.lightning_cli`;
tool subcommands (inspect, phantom, synthesize-*, score, ...) are modules of this package with a
``main(argv) -> int`` function, imported lazily so ``articulate inspect`` does not import torch
models it does not need.
"""

from __future__ import annotations

import importlib
import sys

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

# name -> (module, one-line help). A module that does not exist yet reports "not built yet".
TOOLS: dict[str, tuple[str, str]] = {
    "inspect": ("articulate.cli.inspect", "show what the readers see in a file or dataset folder"),
    "phantom": ("articulate.cli.phantom", "write a synthetic articulatory-phantom dataset in real file formats"),
    "synthesize-audio": ("articulate.cli.synthesize_audio", "tagged MRI -> mel -> WAV with a trained mri2audio checkpoint"),
    "synthesize-uti": ("articulate.cli.synthesize_uti", "speech (+ transcript) -> ultrasound video with a wav2uti checkpoint"),
    "transcribe": ("articulate.cli.transcribe", "Whisper transcripts for a dataset, cached beside the audio"),
    "score": ("articulate.cli.score", "score predicted files against references (Corr2D, PESQ, LPIPS, FID, FVD, RMSE, PSNR)"),
    "bench": ("articulate.cli.bench", "speed and memory benchmarks -> JSON"),
    "reproduce": ("articulate.cli.reproduce", "reproduce a paper's table on the phantom (or your data)"),
}


def _usage() -> str:
    lines = [
        "usage: articulate <command> [options]",
        "",
        "training (LightningCLI; see `articulate fit --help`):",
        "  fit | validate | test | predict   --config configs/X.yaml [--trainer.devices N ...]",
        "",
        "tools:",
    ]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in TOOLS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command in LIGHTNING_SUBCOMMANDS:
        from articulate.cli.lightning_cli import run_lightning_cli

        return run_lightning_cli(argv)
    if command not in TOOLS:
        print(f"articulate: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = TOOLS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        print(f"articulate {command}: not built yet", file=sys.stderr)
        return 2
    from articulate.errors import ArticulateError

    try:
        return int(module.main(rest) or 0)
    except ArticulateError as err:
        print(f"articulate {command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
