"""`articulate reproduce mri2audio|wav2uti [--quick] [--out DIR] ...`: a paper's table, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path


def _datamodule(extra: list[str], quick: bool):
    """The configured mri2audio DataModule (not set up)."""
    from articulate.cli.lightning_cli import ArticulateCLI
    from articulate.cli.train import fit_args
    from articulate.experiments.mri2audio_plan import MRI_QUICK_PRESET

    args = fit_args("mri2audio", MRI_QUICK_PRESET if quick else None)
    cli = ArticulateCLI(args=args + ["--trainer.logger=false", "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false"] + extra, run=False)
    return cli.datamodule


def _n_subjects(dm) -> int:
    """Subjects in the configured mri2audio data (the phantom's cohort when no data is given)."""
    dm.prepare_data()
    dm.setup("fit")
    return len(dm.subjects)


def build_parser() -> argparse.ArgumentParser:
    from articulate.cli import options as opt
    from articulate.directions import directions

    parser = opt.Parser(prog="articulate reproduce", description=__doc__)
    parser.add_argument("direction", choices=[d.name for d in directions() if d.reproduce])
    parser.add_argument("--quick", action="store_true", help="the small CPU preset (about an hour per direction on 2 cores)")
    opt.path(parser, "--out", role="output", default=None, help="results folder (default results/<direction>[_quick])")
    opt.number(parser, "--seeds", integer=True, low=1, high=100, default=3,
               help="random trials (default 3 as the papers; the paired tests need them)")
    parser.add_argument("--split", choices=["loso", "kfold"], default=None,
                        help="mri2audio protocol (default: loso; QUICK: the quick config's k-fold)")
    opt.number(parser, "--k", integer=True, low=2, high=1000, default=None, help="folds for --split kfold")
    opt.number_list(parser, "--folds", low=0, high=999, default=None, help="only these folds, e.g. 0,1,2 (default: all; QUICK: 0)")
    opt.number_list(parser, "--resolutions", low=8, high=1024, default=None,
                    help="wav2uti resolutions (default 64,96,112; QUICK: the 64-px base stage only)")
    opt.path(parser, "--contour-ckpt", role="input", default=None,
             help="wav2uti: the uti2contour checkpoint that scores every row (default: train the phantom "
                  "tracker first, configs/uti2contour/phantom64.yaml)")
    opt.number(parser, "--contour-steps", integer=True, low=1, high=10**7, default=None,
               help="wav2uti: training steps of that tracker (default: QUICK 400, else the config's)")
    parser.add_argument("--no-contour", action="store_true", help="wav2uti: no contour measure")
    parser.add_argument("--logger", choices=["csv", "wandb"], default="csv", help="per-run logger")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides for every run, e.g. --data.init_args.data_dir=/data")
    return parser


def main(argv: list[str]) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    extra = list(args.overrides) + unknown

    from articulate.experiments import mri2audio_plan, wav2uti_plan
    from articulate.experiments import reproduce as rp

    quick_tag = "_quick" if args.quick else ""
    out = Path(args.out or f"results/{args.direction}{quick_tag}")
    folds = args.folds  # checked by the parser: whole numbers, comma-separated
    seeds = args.seeds
    if args.direction == "mri2audio":  # each direction's plan has its own options
        split = args.split or ("kfold" if args.quick else "loso")
        dm = _datamodule(extra, args.quick)
        n = _n_subjects(dm) if (split == "loso" and folds is None) else 0
        plan = mri2audio_plan.mri2audio_plan(args.quick, seeds, folds, split, args.k, n, explicit=args.split is not None,
                                             phantom=dm.data_dir is None)  # A's ceiling row needs the motion regions
    else:
        res = args.resolutions or ([64] if args.quick else [64, 96, 112])
        if args.contour_ckpt and not Path(args.contour_ckpt).is_file():
            from articulate.errors import InputError

            raise InputError(args.contour_ckpt, "--contour-ckpt: file not found")
        plan = wav2uti_plan.wav2uti_plan(args.quick, seeds, res, contour_ckpt=args.contour_ckpt,
                                         contour_steps=args.contour_steps, contour=not args.no_contour)
    summary = rp.reproduce(plan, out, extra_args=extra, logger=args.logger)
    print((out / "table.md").read_text())
    print(f"written: {out / 'table.md'}, {out / 'table.csv'}, {out / 'metrics.png'} ({summary['seconds']} s)")
    return 0
