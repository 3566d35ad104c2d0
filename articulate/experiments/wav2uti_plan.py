"""wav2uti's Tables 1-2 (the audio-textual diffusion paper): the DNN baseline, audio-only and audio+text
diffusion at 64 / 96 / 112 px (96 and 112 are super-resolution stages of the cascade, sampled from the 64-px
base stage's output); RMSE, PSNR, LPIPS, FID, FVD and the tongue-contour MSD (a phantom contour tracker,
trained once first unless ``--contour-ckpt`` names one); beside them the floors (training-mean frame, ridge
probe) and the ceiling (the true video), and paired tests per test recording between rows."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from articulate.experiments.reproduce import Plan, Reproduction, Row
from articulate.experiments.runner import RunSpec

W_METRICS = [("test/rmse", "RMSE ↓"), ("test/psnr", "PSNR ↑"), ("test/lpips", "LPIPS ↓"),
             ("test/fid", "FID ↓"), ("test/fvd", "FVD ↓"),
             ("test/contour_msd", "Contour MSD vs real, px ↓"), ("test/contour_msd_truth", "Contour MSD vs truth, px ↓"),
             ("test/contour_found_fraction", "Tongue found ↑"),
             ("test/swap_change", "Swap: pixels move"), ("test/swap_contour_change", "Swap: contour moves, px"),
             ("test/detail_ratio", "Detail (real = 1)")]
# Beside the table's columns the CSV keeps the contour distances in mm (comparable across resolutions).
W_CSV_METRICS = ["test/contour_msd_mm", "test/contour_msd_truth_mm"]


W_QUICK_STEPS = 500  # each diffusion row's training in the QUICK preset (steps, not wall time)
W_QUICK_DNN_STEPS = 1000
W_QUICK_SEEDS = 3
W_BASE_RESOLUTION = 64  # the cascade's base stage (configs/wav2uti.yaml); 96/112 px are super-resolution stages
# The contour tracker every row is scored with (configs/uti2contour/phantom64.yaml), trained once first.
W_CONTOUR_LABEL = "Contour tracker (phantom, 64 px)"
W_QUICK_CONTOUR_STEPS = 400
W_CONTOUR_STEPS = 20000  # the full uti2contour config's


def wav2uti_rows(resolutions: list[int], quick: bool) -> list[Row]:
    """DNN, then audio-only and audio+text per resolution; rows above the 64-px base stage test the cascade."""
    base = W_BASE_RESOLUTION
    # QUICK: step bounds per row (the table header states them) keep 3 seeds within ~45 minutes.
    cap = [f"--trainer.max_steps={W_QUICK_STEPS}"] if quick else []
    dnn_cap = [f"--trainer.max_steps={W_QUICK_DNN_STEPS}"] if quick else []
    rows = [Row(f"DNN baseline ({base} px)", ["dnn"], dnn_cap)]
    cascade = base in resolutions
    for res in resolutions:
        extra = [] if res == base else [f"res{res}"]
        sr = res != base and cascade
        rows.append(Row(f"Audio-only ({res} px)", ["audio_only", *extra], cap,
                        low_res_from=f"Audio-only ({base} px)" if sr else None))
        rows.append(Row(f"Audio+Text ({res} px)", extra, cap, low_res_from=f"Audio+Text ({base} px)" if sr else None))
    if base in resolutions:  # ours, not the paper's: the base stage on the residual of a speech ridge prior
        rows.append(Row(f"Audio+Text, speech prior ({base} px, ours)", ["speech_prior"], cap))
    return rows


def wav2uti_examples(cli) -> dict[str, np.ndarray]:
    import torch

    model, dm = cli.model.eval(), cli.datamodule
    batch = next(iter(dm.test_dataloader()))
    batch = {k: (v.to(model.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    with torch.no_grad():
        pred, target = model.predict_clips(batch, 1, cascade=False), batch["video"][:1]  # any Wav2UTIModule
    return {"video_pred": pred[0, 0].float().cpu().numpy(), "video_target": target[0, 0].float().cpu().numpy()}


def contour_spec(quick: bool, steps: int | None = None) -> RunSpec:
    """The contour tracker's run: uti2contour on the phantom drawn as the wav2uti frames (phantom64)."""
    from articulate.directions import get_direction

    configs = get_direction("uti2contour").config_stack(["phantom64"], "quick" if quick else None)
    steps = steps if steps is not None else (W_QUICK_CONTOUR_STEPS if quick else W_CONTOUR_STEPS)
    # One validation, at the end: the tracker used is the last one. (uti2contour's own validation MSD
    # counts the points it extrapolates outside the fan, which the true surface lacks: it barely moves
    # after ~100 steps while the error inside the fan still falls, so "best" would pick an early one.)
    return RunSpec("uti2contour", W_CONTOUR_LABEL, configs,
                   [f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={steps}"], fold=None, seed=0)


def contour_prepare(ckpt: str | None, spec: RunSpec) -> Callable[[Path, str], list[str]]:
    """Every row's ``contour_ckpt``: the given checkpoint, or the phantom tracker (trained once, cached)."""
    from articulate.directions import PROJECT_ROOT
    from articulate.experiments.trackers import cached_tracker

    def prepare(out_dir: Path, logger: str) -> list[str]:
        path = ckpt or cached_tracker(spec, PROJECT_ROOT)
        print(f"[contour] {spec.model if spec is not None and not ckpt else 'given tracker'}: {path}", flush=True)
        return [f"--model.init_args.evaluation.contour_ckpt={path}"]

    return prepare


def train_prepare(preset: str | None, variants: list[str], args: list[str]) -> list[str]:
    """What ``articulate train wav2uti`` adds on the phantom: the contour tracker its test pass scores tongue
    surfaces with (``test/contour_msd_truth``), trained once and cached. Nothing when the user names a tracker
    or the data are real recordings (they have no true surface; give ``--model.init_args.evaluation.contour_ckpt``)."""
    import yaml

    from articulate.directions import PROJECT_ROOT, get_direction
    from articulate.experiments.trackers import cached_tracker

    if any(a.startswith(("--model.init_args.evaluation.contour_ckpt", "--data.init_args.data_dir", "--data.data_dir"))
           for a in args):
        return []
    record = get_direction("wav2uti")
    if preset in record.presets and "data.init_args.data_dir" in record.presets[preset].needs:
        return []  # a real-data preset (its folder comes from the command line)
    for cfg in record.config_stack(variants, preset):
        data = (yaml.safe_load((PROJECT_ROOT / cfg).read_text()) or {}).get("data") or {}
        if (data.get("init_args") or {}).get("data_dir"):
            return []
    return [f"--model.init_args.evaluation.contour_ckpt={cached_tracker(contour_spec(preset == 'quick'), PROJECT_ROOT)}"]


def _cell(table: list[dict[str, Any]], label: str, key: str) -> float | None:
    row = next((r for r in table if r["model"] == label), None)
    v = row.get(f"{key}_mean") if row else None
    return v if isinstance(v, (int, float)) else None


def wav2uti_notes(dnn: str, diffusion: str, audio_only: str, contour: RunSpec | None, plan_ckpt: str | None = None):
    """The table's reading, from its own numbers: diffusion vs DNN on every measure, said as it is."""

    def notes(table: list[dict[str, Any]], paired: list[dict[str, Any]], out_dir: Path) -> list[str]:
        out = []
        if contour is not None:
            oracle = _cell(table, "True video (ceiling)", "test/contour_msd_truth")
            out.append(
                f"**Contour tracker**: {contour.model}, a heatmap U-Net trained "
                f"{contour.overrides[0].split('=')[-1]} steps on a phantom cohort of other speakers (seed 1, disjoint "
                "from these test speakers; configs/uti2contour/phantom64.yaml), the same for every row. Its own "
                "error on the real test frames against the true surface (inside the fan) is the true video's "
                f"'vs truth'{f' ({oracle:.3f} px)' if oracle is not None else ''}: no model can score better there.")
        elif plan_ckpt:
            out.append(f"**Contour tracker**: {plan_ckpt} (given), the same for every row.")
        said = []
        # (short name, lower is better, per-recording key of its paired test)
        measures = {"test/rmse": ("RMSE", True, "rmse"), "test/psnr": ("PSNR", False, None),
                    "test/lpips": ("LPIPS", True, None), "test/fid": ("FID", True, None), "test/fvd": ("FVD", True, None),
                    "test/contour_msd": ("contour MSD vs real", True, "contour_msd"),
                    "test/contour_msd_truth": ("contour MSD vs truth", True, "contour_msd_truth")}
        for key, (name, low, per_key) in measures.items():
            a, b = _cell(table, diffusion, key), _cell(table, dnn, key)
            if a is None or b is None:
                continue
            wins = (a < b) if low else (a > b)
            test = next((t for t in paired if (t["a"], t["b"], t["key"]) == (diffusion, dnn, per_key)), None)
            p = f", paired t-test p = {test['p_t']:.2g}, n = {test['n']}" if test and test.get("p_t") is not None else ""
            said.append(f"{name} {a:.3f} vs {b:.3f} ({'diffusion' if wins else 'DNN'} better{p})")
        if said:
            out.append(f"**Diffusion ({diffusion}) vs {dnn}, in this run**: " + "; ".join(said) + ". RMSE and PSNR "
                       "reward the conditional mean: the phantom's speckle belongs to the unseen speaker's tissue and "
                       "cannot be predicted from speech, so a regression (DNN, ridge) predicts its mean while a sampler "
                       "draws one speckle pattern, which costs up to √2 in RMSE even for a perfect sampler. FID/FVD "
                       "reward realistic texture and motion; the contour MSD measures what clinicians read, the tongue "
                       "shape. A difference is only shown by the paired tests below, not by overlapping ± spreads.")
        return out

    return notes


def wav2uti_plan(quick: bool, seeds: int, resolutions: list[int], contour_ckpt: str | None = None,
                 contour_steps: int | None = None, contour: bool = True) -> Plan:
    """``contour_ckpt``: the tracker every row is scored with; None (default) trains the phantom tracker
    first (``contour_steps`` bounds it; QUICK: W_QUICK_CONTOUR_STEPS); ``contour=False``: no contour measure."""
    rows = wav2uti_rows(resolutions, quick)
    base = W_BASE_RESOLUTION
    dnn, at, ao = rows[0].label, f"Audio+Text ({base} px)", f"Audio-only ({base} px)"
    spec = contour_spec(quick, contour_steps) if contour and contour_ckpt is None else None
    header = (
        "# wav2uti: Tables 1-2 on the articulatory phantom\n\n"
        f"Speaker-disjoint test set; seeds {list(range(seeds))}; mean ± std over seeds. Pixels on 0-255. "
        "96/112 px rows are super-resolution stages tested as a cascade: they refine the samples of the "
        "same seed's 64-px row (with --resolutions lacking 64: the downsampled ground truth, an oracle).\n\n"
        "Floors and ceiling, scored on the same test clips: the training set's mean frame for every frame; a ridge "
        "probe (closed-form ridge from the DNN's input, log-mel with ±5 frames, to pixels, fitted on the training "
        "clips, penalty chosen on the validation clips); a random real clip (for each test clip, a clip of another "
        "test speaker's utterance: what a model that ignores the speech scores, however realistic its samples); "
        "the true video (its RMSE, PSNR, LPIPS, FID, FVD and its "
        "contour distance to itself are 0 / ∞ by definition: trivial). LPIPS/FID/FVD are not computed for the "
        "floors. Contour MSD (px at the row's resolution; mm in table.csv): the tongue contour tracked in generated "
        "vs real frames (vs real), or generated frames vs the phantom's true surface (vs truth); frames whose "
        "tongue the tracker finds (mean confidence ≥ 0.3): 'Tongue found'. Swap check: each test clip generated "
        "again from the same noise with its random clip's speech (and transcript): how far the pixels (RMSE) and "
        "the tracked contour (px) move; 0 = the model ignores its condition; the true video's row gives what the "
        "truth changes between the two clips."
    )
    if quick:
        header += ("\n\n**QUICK preset**: a reduced phantom cohort (10 speakers, 2 for test), 8-frame clips, tiny "
                   "networks at 64 px (base stage only, no super-resolution rows unless --resolutions names them) "
                   f"and a few minutes of CPU training per run (diffusion rows {W_QUICK_STEPS} steps, DNN "
                   f"{W_QUICK_DNN_STEPS} steps, contour tracker {spec.overrides[0].split('=')[-1] if spec and spec.overrides else 'the given'} "
                   "steps); figures show orderings at small scale, not converged models.")
    floors = {"test/rmse": "rmse", "test/psnr": "psnr", "test/contour_msd": "contour_msd",
              "test/contour_msd_truth": "contour_msd_truth", "test/contour_found_fraction": "contour_found_fraction",
              "test/contour_msd_mm": "contour_msd_mm", "test/contour_msd_truth_mm": "contour_msd_truth_mm",
              "test/detail_ratio": "detail_ratio"}
    trivial = {k: "=0 (trivial)" for k in ("test/rmse", "test/lpips", "test/fid", "test/fvd", "test/contour_msd",
                                            "test/contour_msd_mm")}
    extra_rows = [
        ("Training-mean frame (floor)", {m: f"test/{k}_mean_baseline" for m, k in floors.items()}, dnn),
        ("Ridge probe (floor)", {m: f"test/{k}_ridge" for m, k in floors.items()}, dnn),
        # what a model that ignores the speech scores, however realistic: another test speaker's real clip
        ("Random real clip (floor)", {m: f"test/{k}_random_clip" for m, k in floors.items()}, dnn),
        # the swap columns of the true video: what the truth changes when the speech does
        ("True video (ceiling)", {**trivial, "test/psnr": "=∞ (trivial)", "test/contour_msd_truth": "test/contour_msd_truth_oracle",
                                  "test/contour_found_fraction": "test/contour_found_fraction_oracle",
                                  "test/contour_msd_truth_mm": "test/contour_msd_truth_oracle_mm",
                                  "test/swap_change": "test/swap_change_real",
                                  "test/swap_contour_change": "test/swap_contour_change_real",
                                  "test/detail_ratio": "=1 (trivial)"}, dnn),
    ]
    aliases = {"Ridge probe (floor)": (dnn, "_ridge"), "Training-mean frame (floor)": (dnn, "_mean_baseline"),
               "Random real clip (floor)": (dnn, "_random_clip")}
    floor_rows = ("Training-mean frame (floor)", "Ridge probe (floor)", "Random real clip (floor)")
    pairs = [(at, dnn), (ao, dnn), (at, ao)] + [(m, f) for m in (at, ao, dnn) for f in floor_rows]
    pairs += [(f"Audio+Text ({res} px)", f"Audio-only ({res} px)") for res in resolutions if res != base]
    known = {r.label for r in rows} | set(aliases)
    pairs = [(a, b) for a, b in pairs if a in known and b in known]
    return Plan(
        experiment="wav2uti", preset="quick" if quick else None,
        rows=rows, metrics=W_METRICS, folds=[0], seeds=list(range(seeds)), common=[], header=header,
        examples=wav2uti_examples, extra_rows=extra_rows,
        prepare=contour_prepare(contour_ckpt, spec) if (contour_ckpt or spec) else None,
        pairs=pairs, aliases=aliases,
        paired_metrics=[("rmse", "RMSE"), ("contour_msd", "contour MSD vs real (px)"),
                        ("contour_msd_truth", "contour MSD vs truth (px)"), ("detail_ratio", "detail ratio")],
        notes=wav2uti_notes(dnn, at, ao, spec, contour_ckpt), csv_metrics=W_CSV_METRICS,
    )


# -- `articulate reproduce wav2uti` (moved from articulate/cli/reproduce.py by issue 28) ------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from articulate.training import options as opt

    opt.number_list(parser, "--resolutions", low=8, high=1024, default=None,
                    help="wav2uti resolutions (default 64,96,112; QUICK: the 64-px base stage only)")
    opt.path(parser, "--contour-ckpt", role="input", default=None,
             help="wav2uti: the uti2contour checkpoint that scores every row (default: train the phantom "
                  "tracker first, configs/uti2contour/phantom64.yaml)")
    opt.number(parser, "--contour-steps", integer=True, low=1, high=10**7, default=None,
               help="wav2uti: training steps of that tracker (default: QUICK 400, else the config's)")
    parser.add_argument("--no-contour", action="store_true", help="wav2uti: no contour measure")


def plan_from_args(args: argparse.Namespace, extra: list[str]) -> Plan:
    res = args.resolutions or ([64] if args.quick else [64, 96, 112])
    if args.contour_ckpt and not Path(args.contour_ckpt).is_file():
        from articulate.errors import InputError

        raise InputError(args.contour_ckpt, "--contour-ckpt: file not found")
    return wav2uti_plan(args.quick, args.seeds, res, contour_ckpt=args.contour_ckpt,
                        contour_steps=args.contour_steps, contour=not args.no_contour)


REPRODUCTION = Reproduction(add_arguments, plan_from_args)
