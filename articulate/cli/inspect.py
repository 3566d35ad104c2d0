"""`articulate inspect PATH [--json]`: show what the readers see in a file, stem or dataset folder.

Bad input raises ``InputError``; the dispatcher in :mod:`articulate.cli.main` prints it as one
line and exits 1.
"""

from __future__ import annotations

import argparse
import sys

from articulate.readers.inspect import inspect_path

# Keys shown first, in this order; the rest follow as they come.
_ORDER = (
    "kind", "path", "stem", "shape", "dtype", "sample_rate", "channels", "samples", "duration_s",
    "frames", "fps", "frame_s", "height", "width", "pixel_mm", "transcript", "transcript_source", "speaker",
    "audio_source",
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
        elif key.endswith("_xywh") and isinstance(value, list) and len(value) == 4:
            lines.append(f"{pad}{key:<{width}}  x={value[0]} y={value[1]} w={value[2]} h={value[3]}")
        elif key.endswith("_rc") and isinstance(value, list) and len(value) == 2:
            lines.append(f"{pad}{key:<{width}}  row {_value(value[0])}, column {_value(value[1])}")
        else:
            lines.append(f"{pad}{key:<{width}}  {_value(value)}")
    return "\n".join(lines)


def warnings_of(info: dict, where: str | None = None) -> list[str]:
    """``path: problem`` for every audio level problem anywhere in a report."""
    where = info.get("path", where)
    out: list[str] = []
    problems = info.get("problems")
    if isinstance(problems, list):
        out += [f"{where}: {p}" for p in problems]
    elif isinstance(problems, str) and problems != "none":
        out.append(f"{where}: {problems}")
    for value in info.values():
        if isinstance(value, dict):
            out += warnings_of(value, where)
        elif isinstance(value, list):
            out += [w for item in value if isinstance(item, dict) for w in warnings_of(item, item.get("image", where))]
    return out


def build_parser() -> argparse.ArgumentParser:
    from articulate.training import options as opt

    parser = opt.Parser(
        prog="articulate inspect",
        description="Show what Articulate's readers see in an audio, MRI, ultrasound (.ult/.param/US.txt stem), "
        "video or TextGrid file, or a dataset folder / manifest.csv: shapes, rates, synchronisation and trimming, "
        "audio level (peak/RMS dBFS, near-silent or clipped), the ultrasound fan of a video.",
    )
    opt.path(parser, "path", role="input", help="file, utterance stem (path without suffix) or dataset folder")
    parser.add_argument("--json", action="store_true",
                        help="print one strict-JSON object instead of text (NaN as null, infinity as \"inf\")")
    opt.path(parser, "--fan-png", role="output", metavar="OUT.png", default=None,
             help="video files: write the detected ultrasound fan (mask, box, apex) over the middle frame")
    return parser


def main(argv: list[str] | None = None) -> int:
    from articulate.training.options import dumps

    args = build_parser().parse_args(argv)
    if args.fan_png is not None:  # the files of a stem are inputs too (x.ult / x.param / x.wav ...)
        from articulate.readers.ultrasound import utterance_files
        from articulate.utils.atomic import check_not_inputs

        check_not_inputs({"--fan-png": args.fan_png}, [p for p in utterance_files(args.path).values() if p])
    info = inspect_path(args.path, fan_png=args.fan_png)
    print(dumps(info) if args.json else format_report(info))
    for line in warnings_of(info):  # audio level problems also go to stderr, where they are noticed
        print(f"warning: {line}", file=sys.stderr)
    return 0
