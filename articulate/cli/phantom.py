"""`articulate phantom mri2audio|wav2uti --out DIR ...`, `articulate phantom preview DIR --out preview.png
[--real PATH ...]` and `articulate phantom ceiling [--subjects N --recordings N --crops N --draws K --seed S
--out results.json]` (:mod:`articulate.phantom.ceilings`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from articulate.phantom.ceilings import CEILING_BOUNDS
    from articulate.phantom.cohort import option_bounds
    from articulate.training import options as opt

    p = opt.Parser(prog="articulate phantom", description="write a synthetic articulatory-phantom cohort in real file formats")
    sub = p.add_subparsers(dest="command", required=True)
    seed = {"integer": True, "low": 0, "high": 2**63 - 1}
    for kind, help_ in (("mri2audio", "tagged MRI (NIfTI) + speech (WAV), 22,050 Hz"),
                        ("wav2uti", "UltraSuite ultrasound (.ult/.param/.wav/.txt), 16 kHz, 60 fps")):
        s = sub.add_parser(kind, help=help_)
        opt.path(s, "--out", role="output", required=True, help="output folder (new, empty, or an earlier cohort)")
        opt.number(s, "--subjects", **option_bounds(kind, "subjects"), default=None, help="number of subjects (default 63 / 44)")
        opt.number(s, "--seed", **seed, default=0)
        opt.number(s, "--repetitions", **option_bounds(kind, "repetitions"), default=None, help="repetitions of each utterance")
        opt.number(s, "--workers", integer=True, low=1, high=256, default=None, help="processes (default: CPU count, at most 4)")
        opt.number(s, "--sr", **option_bounds(kind, "sr"), default=None, help="audio sample rate (Hz)")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        if kind == "mri2audio":
            s.add_argument("--words", nargs="+", default=None, help="main words, split over subjects")
            opt.number(s, "--word-shares", nargs="+", **option_bounds(kind, "word_shares"), default=None,
                       help="subjects per word (ratio)")
            s.add_argument("--extra-words", nargs="+", default=None, help="words every subject also says")
            opt.number(s, "--frames", **option_bounds(kind, "n_frames"), default=None, help="MRI frames per recording (26)")
        else:
            opt.number(s, "--vowels", **option_bounds(kind, "vowels"), default=None, help="vowel prompts per speaker (2)")
            opt.number(s, "--words", **option_bounds(kind, "words"), default=None, help="word prompts per speaker (3)")
            opt.number(s, "--sentences", **option_bounds(kind, "sentences"), default=None, help="sentence prompts per speaker (1)")
            opt.number(s, "--fps", **option_bounds(kind, "fps"), default=None, help="ultrasound frame rate (60)")
            opt.number(s, "--pix-per-vector", **option_bounds(kind, "pix_per_vector"), default=None,
                       help="samples per scan line (256)")
    pv = sub.add_parser("preview", help="a PNG sheet of a cohort (MRI tags, ultrasound fans, mel spectrograms)")
    opt.path(pv, "root", role="input", help="a cohort folder, or a folder holding cohorts")
    opt.path(pv, "--out", role="output", default="preview.png")
    opt.path(pv, "--real", role="input", nargs="+", default=None, metavar="PATH",
             help="real recordings (ultrasound video, .ult, .wav): write a phantom-vs-real sheet instead")
    ce = sub.add_parser("ceiling", help="mri2audio: the Corr2D / PESQ-wb a model can reach at best by what it knows "
                                        "of the intonation: seeing the larynx, knowing the word's contour, blind "
                                        "(markdown table; JSON with --out)")
    ceiling = {name: {"integer": True, "low": 1, "high": high} for name, high in CEILING_BOUNDS.items()}
    opt.number(ce, "--subjects", **ceiling["subjects"], default=40, help="cohort size (default 40, the QUICK reproduction's cohort)")
    opt.number(ce, "--recordings", **ceiling["recordings"], default=12, help="recordings scored, spread over the cohort (12)")
    opt.number(ce, "--crops", **ceiling["crops"], default=4, help="evaluation crops per recording (4)")
    opt.number(ce, "--draws", **ceiling["draws"], default=8, help="intonation draws K per recording (8)")
    opt.number(ce, "--seed", **seed, default=0, help="the cohort's seed (0)")
    opt.path(ce, "--out", role="output", default=None, help="also write the full result as JSON here")
    ce.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _ceiling(args: argparse.Namespace) -> int:
    from articulate.phantom.ceilings import ceiling_table, check_ceiling_options, intonation_ceilings
    from articulate.utils.atomic import atomic_path, check_output

    check_ceiling_options(args.subjects, args.recordings, args.crops, args.draws)  # bad values: one line before any work
    if args.out is not None:
        check_output(args.out)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    result = intonation_ceilings(subjects=args.subjects, recordings=args.recordings, crops=args.crops,
                                 draws=args.draws, seed=args.seed, log=log)
    s = result["settings"]
    print(f"intonation ceilings, mri2audio phantom ({s['subjects']} subjects, seed {s['seed']}): "
          f"{s['recordings']} recordings x {s['crops']} crops, K={s['draws']} draws, {result['seconds']:.0f} s")
    print(ceiling_table(result))
    f0 = result["f0_rms_semitones"]
    print(f"F0 RMS distance to the true contour (voiced): from the larynx {f0['larynx']:.2f} st, the word's contour "
          f"{f0['word']:.2f} st, another draw {f0['redraw']:.2f} st, flat {f0['flat']:.2f} st")
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
        print(f"wrote {args.out}")
    return 0


def _preview_inputs(root: Path) -> list[Path]:
    """The manifests and recordings a preview reads (none may be its output)."""
    root = Path(root)
    if not root.is_dir():
        return [root]
    files = [root / "manifest.csv", *root.glob("*/manifest.csv")]
    return [p for m in files if m.is_file() for p in (m, *m.parent.rglob("*")) if p.is_file()]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ceiling":
        return _ceiling(args)
    if args.command == "preview":
        from articulate.utils.atomic import check_not_inputs

        check_not_inputs({"--out": args.out}, _preview_inputs(args.root))  # e.g. --out X/manifest.csv
        if args.real:
            from articulate.phantom.compare import realism_sheet

            print(realism_sheet(args.root, args.real, args.out))
            return 0
        from articulate.phantom.preview import preview

        print(preview(args.root, args.out))
        return 0
    from articulate.phantom import generate

    names = {"repetitions": "repetitions", "sr": "sr", "words": "words", "word_shares": "word_shares",
             "extra_words": "extra_words", "frames": "n_frames", "vowels": "vowels", "sentences": "sentences",
             "fps": "fps", "pix_per_vector": "pix_per_vector"}
    options = {opt: getattr(args, arg) for arg, opt in names.items() if getattr(args, arg, None) is not None}
    started = time.perf_counter()
    root = generate(args.command, args.out, subjects=args.subjects, seed=args.seed, quiet=args.quiet,
                    workers=args.workers, **options)  # whole or not at all (a temporary folder renamed)
    info = json.loads((root / "phantom.json").read_text())
    print(f"wrote {info['recordings']} {args.command} recordings to {root} "
          f"in {time.perf_counter() - started:.1f} s (manifest: {root / 'manifest.csv'})")
    return 0
