"""`articulate inspect PATH [--json]`: show what the readers see in a file, stem or dataset folder.

Bad input raises ``InputError``; the dispatcher in :mod:`articulate.cli.main` prints it as one
line and exits 1.
"""

from __future__ import annotations

import argparse
import json

from articulate.readers.inspect import inspect_path

# Keys shown first, in this order; the rest follow as they come.
_ORDER = (
    "kind", "path", "stem", "shape", "dtype", "sample_rate", "channels", "samples", "duration_s",
    "frames", "fps", "frame_s", "height", "width", "pixel_mm", "transcript", "speaker",
)


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " x ".join(_value(v) for v in value) if all(isinstance(v, (int, float)) for v in value) else ", ".join(map(_value, value))
    return str(value)


def format_report(info: dict, indent: int = 0) -> str:
    """Aligned ``key: value`` lines; nested dicts indent, lists of records become a short table."""
    pad = " " * indent
    keys = [k for k in _ORDER if k in info] + [k for k in info if k not in _ORDER]
    width = max((len(k) for k in keys), default=0)
    lines = []
    for key in keys:
        value = info[key]
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(format_report(value, indent + 2))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key}:")
            for item in value:
                lines.append(f"{pad}  - " + "  ".join(f"{k}={_value(v)}" for k, v in item.items() if v is not None))
        else:
            lines.append(f"{pad}{key:<{width}}  {_value(value)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="articulate inspect",
        description="Show what Articulate's readers see in an audio, MRI, ultrasound (.ult/.param/US.txt stem) "
        "or video file, or a dataset folder / manifest.csv.",
    )
    parser.add_argument("path", help="file, utterance stem (path without suffix) or dataset folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    info = inspect_path(args.path)
    print(json.dumps(info, indent=None if args.json else 2) if args.json else format_report(info))
    return 0
