"""mri2audio's Table 1 (the tagged-MRI paper): Lip2AudSpec, the full model and its three ablations,
leave-one-subject-out (or k-fold by subject) x 3 seeds; Corr2D and PESQ as mean +- std over seeds, with
the floors and ceilings beside them (per-utterance mean mel, ridge probe, oracle), the other F and, on the
phantom, A's ceiling, and paired tests of every row against the full model over the test recordings
(per-recording Corr2D and PESQ-wb, mean over seeds)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from articulate.experiments.reproduce import Plan, Reproduction, Row

# The ablations; the Lip2AudSpec baseline heads the table (mri_rows).
MRI_ABLATIONS = [
    Row("Ours"),
    Row("Ours w/o Attention", ["no_attention"]),
    Row("Ours w/o Pair-wise Disentangle", ["no_pairwise"]),
    Row("Ours w/o GAN", ["no_gan"]),
]
# QUICK: the 28 M-parameter baseline would take most of the 30-minute budget for the 4 epochs of the
# other rows; it trains one epoch (a step bound, so the same model on every machine; the header says so).
LIP2AUDSPEC_QUICK_EPOCHS = 1


# Beyond the paper's table, both presets: A's ceiling (no A; F reads the phantom's true moving-articulator region
# as its mask, phantom data only) and the other F (the paper's F in QUICK, the frame translator otherwise).
MRI_ORACLE = Row("Ours, true motion mask instead of A (A's ceiling)", ["oracle_mask"])
MRI_FRAME_TRANSLATOR = "frame_translator"
# QUICK: the translator rows use F with a time axis (configs/mri2audio/frame_translator.yaml), which reads A's
# frames as the paper's F does and leaves its mean-output start in epoch 2; in the 4 epochs of the preset the
# paper's F has not left it on most seeds (its own row says so).
MRI_QUICK_VARIANTS = [MRI_FRAME_TRANSLATOR]


def mri_rows(quick: bool, phantom: bool = True) -> list[Row]:
    """Table 1's rows (Lip2AudSpec, Ours, its three ablations), then the other F and, on the phantom, A's ceiling."""
    lip = Row("Lip2AudSpec", ["lip2audspec"], [f"--trainer.max_epochs={LIP2AUDSPEC_QUICK_EPOCHS}"] if quick else [])
    oracle = [MRI_ORACLE] if phantom else []
    if not quick:
        return [lip, *MRI_ABLATIONS, Row("Ours, F with a time axis (frame translator)", [MRI_FRAME_TRANSLATOR]), *oracle]
    return [lip, *(Row(r.label, MRI_QUICK_VARIANTS + r.variants, r.overrides) for r in MRI_ABLATIONS + oracle),
            Row("Ours, the paper's F (3D convolutions)")]


MRI_METRICS = [("test/corr2d", "Corr2D for spectrogram ↑"), ("test/corr2d_warped", "Corr2D on the target's timing (DTW) ↑"),
               ("test/pesq", "PESQ for waveform ↑"),
               ("test/attention_motion_ratio", "Attention in/out of motion ↑"),
               ("test/attention_motion_modulation", "Attention change in/out of motion ↑")]
# Floors and ceilings, from the full model's runs (same data, split and crops for every row).
MRI_FLOORS = [
    ("Per-utterance mean mel (floor)", {"test/corr2d": "test/corr2d_mean_baseline",
                                        "test/corr2d_warped": "test/corr2d_warped_mean_baseline",
                                        "test/pesq": "test/pesq_mean_baseline"}, "Ours"),
    ("Ridge probe (linear, time-aligned)", {"test/corr2d": "test/corr2d_ridge", "test/pesq": "test/pesq_ridge"}, "Ours"),
    # the true mel: Corr2D 1 by definition; PESQ is the Griffin-Lim ceiling
    ("Oracle: true mel + Griffin-Lim (ceiling)", {"test/corr2d": "=1 (by definition)", "test/pesq": "test/pesq_oracle"},
     "Ours"),
]
# floors as paired-test rows: (source row, per-recording key suffix)
MRI_ALIASES = {"Per-utterance mean mel (floor)": ("Ours", "_mean_baseline"),
               "Ridge probe (linear, time-aligned)": ("Ours", "_ridge")}
# The QUICK preset: the CPU training preset of `make train-mri2audio QUICK=1` shortened further, on its own
# 40-subject cohort (configs/mri2audio/reproduce_quick.yaml) so that 7 rows x 3 seeds fit in ~45 minutes on 2 cores.
MRI_QUICK_PRESET = "reproduce_quick"


def _predict(model, batch: dict, n: int | None = None):
    """The model's mels and masks for the batch's first ``n`` items (all for None), with the batch's motion region
    (phantom) for A's ceiling row, as the module's own test step passes it."""
    region = batch.get("motion_region")
    mri = batch["mri"][:n].to(model.device)
    return model.predict_with_masks(mri, None if region is None else region[:n].to(model.device))


def mri2audio_examples(cli) -> dict[str, np.ndarray]:
    """First test recording: target vs predicted mel (and attention masks), both waveforms."""
    import torch

    model, dm = cli.model.eval(), cli.datamodule
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        mel, masks = _predict(model, batch, 1)
        audio = model.synthesize_audio(mel, length=batch["audio"].shape[-1])
    out = {
        "mel_pred": mel[0, 0].cpu().numpy(), "mel_target": batch["mel"][0, 0].numpy(),
        "audio_pred": audio[0].cpu().numpy(), "audio_target": batch["audio"][0].numpy(),
        "sample_rate": np.array(model.sample_rate),
    }
    if masks is not None:
        out["attention"] = masks[0].float().cpu().numpy()
    return out


def mri2audio_details(cli) -> dict[str, Any]:
    """Per test recording (crops averaged): Corr2D and PESQ-wb of the model, the mean mel and the ridge probe, for
    the paired tests (PESQ as the test pass scored it); and the Griffin-Lim method the run's PESQ used."""
    import torch

    from articulate.metrics.functional import corr2d
    from callbacks.metrics import MetricsCallback

    model, dm = cli.model.eval(), cli.datamodule
    keys = ("corr2d", "corr2d_mean_baseline", "corr2d_ridge")
    sums: dict[str, dict[str, list[float]]] = {k: {} for k in keys}
    with torch.no_grad():
        for batch in dm.test_dataloader():
            mel = batch["mel"].to(model.device)
            preds = {"corr2d": _predict(model, batch)[0], "corr2d_ridge": model.ridge_prediction(batch)}
            preds["corr2d_mean_baseline"] = model.baseline_prediction(batch["utterance"].to(model.device))
            names = [dm.item_info("test", int(i))["id"] for i in batch["sample_index"]]
            for key, pred in preds.items():
                if pred is None:
                    continue
                for name, r in zip(names, corr2d(pred.to(mel), mel).tolist()):
                    sums[key].setdefault(name, []).append(r)
    # PESQ per crop as the test pass scored it (a Griffin-Lim per crop and floor is too dear to repeat): the model's
    # from the metrics callback, the floors' from the module
    scored = {**model.test_per_sample}
    for cb in cli.trainer.callbacks:
        if isinstance(cb, MetricsCallback):
            scored.update(cb.test_per_sample)
    pesq_keys = [k for k in ("pesq", "pesq_mean_baseline", "pesq_ridge") if scored.get(k)]
    for key in pesq_keys:
        sums[key] = {}
        for index, value in scored[key].items():
            sums[key].setdefault(dm.item_info("test", int(index))["id"], []).append(value)
    # the runner's per-recording format: {"recording": [ids], <measure>: [values]} (None where not scored)
    names = sorted(sums["corr2d"])
    per: dict[str, list] = {"recording": names}
    for key in (*keys, *pesq_keys):
        per[key] = [float(np.mean(sums[key][n])) if n in sums[key] else None for n in names]
    return {"per_recording": per, "griffin_lim": model.griffin_lim_method(), "griffin_lim_iters": model.griffin_lim_iters}


def mri2audio_plan(quick: bool, seeds: int, folds: list[int] | None, split: str, k: int | None, n_subjects: int,
                   explicit: bool = True, phantom: bool = True) -> Plan:
    """``split``/``k`` override the configs only when ``explicit`` (else the configs' own split is used,
    e.g. the QUICK preset's k-fold); ``k`` None means the config's value (5 in the header). ``phantom``: the data
    is the phantom cohort, whose true motion regions A's ceiling row needs."""
    k_label = k or 5
    if folds is None:
        folds = [0] if quick else list(range(n_subjects if split == "loso" else k_label))
    common = []
    if explicit or not quick:
        common.append(f"--data.init_args.split.kind={split}")
    if k is not None:
        common.append(f"--data.init_args.split.k={k}")
    k = k_label
    size = "QUICK preset: " if quick else ""
    protocol = ("leave-one-subject-out" if split == "loso"
                else f"{k}-fold by subject" if explicit else "k-fold by subject (the preset's k)")
    header = (
        "# mri2audio: Table 1\n\n"
        f"{size}{protocol}, folds {folds if len(folds) <= 8 else f'0..{len(folds) - 1}'}"
        + (f" ({len(folds)} of {n_subjects if split == 'loso' else k})" if (n_subjects or (split != "loso" and explicit)) else "")
        + f", seeds {list(range(seeds))}; "
        "mean ± std over seeds of the fold-averaged metric (the paper's three random trials).\n"
        "PESQ: ITU-T P.862 wide band on Griffin-Lim waveforms (librosa's mel_to_audio, 32 iterations, seeded "
        "phase: the paper's method, pinned in configs/mri2audio.yaml) resampled to 16 kHz.\n"
        "Floors and ceilings (from the full model's runs, same crops): the per-utterance mean mel of the training "
        "crops (no model); a ridge probe fitted in closed form on the training crops (pooled motion PCA codes at "
        "each mel frame's time, +- one frame, and their squares); the oracle, the true mel through the same "
        "Griffin-Lim (Corr2D 1 by definition). Corr2D on the target's timing: after warping the prediction onto "
        "the target's timeline along their DTW path (what timing costs). Attention in/out of motion: the mean mask "
        "of A inside the phantom's moving-articulator region over outside (rows with A, phantom data), and change: the "
        "same for the mask's standard deviation over the frames (an untrained A scores about 1.6-1.8: docs/results/mri2audio.md); A's ceiling "
        "row replaces A by that region itself (1 inside, A's start mask 0.2 outside)."
    )
    if quick:
        header += ("\n\n**QUICK preset**: a reduced phantom cohort and a few minutes of CPU training per run "
                   f"(every row 4 epochs, but Lip2AudSpec, 19x larger, {LIP2AUDSPEC_QUICK_EPOCHS} epoch(s)); "
                   "figures show the ordering at small scale, not converged models. The translator rows use F "
                   "with a time axis (the frame_translator variant: a 2D encoder per frame, 1D convolutions over "
                   "time; it reads A's frames as the paper's F does): in 4 epochs the paper's F (its own row) has "
                   "not left its mean-output start on most seeds.")
    return Plan(
        experiment="mri2audio", preset=MRI_QUICK_PRESET if quick else None, rows=mri_rows(quick, phantom), metrics=MRI_METRICS,
        folds=folds, seeds=list(range(seeds)),
        common=common, header=header, examples=mri2audio_examples,
        extra_rows=MRI_FLOORS, details=mri2audio_details,
        pairs=[(row.label, "Ours") for row in mri_rows(quick, phantom) if row.label != "Ours"]
        + [("Ours", floor) for floor in MRI_ALIASES],
        paired_metrics=[("corr2d", "Corr2D (per recording)"), ("pesq", "PESQ-wb (per recording)")], aliases=MRI_ALIASES,
    )


# -- `articulate reproduce mri2audio` -----------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from articulate.training import options as opt

    parser.add_argument("--split", choices=["loso", "kfold"], default=None,
                        help="mri2audio protocol (default: loso; QUICK: the quick config's k-fold)")
    opt.number(parser, "--k", integer=True, low=2, high=1000, default=None, help="folds for --split kfold")
    opt.number_list(parser, "--folds", low=0, high=999, default=None, help="only these folds, e.g. 0,1,2 (default: all; QUICK: 0)")


def configured_data(extra: list[str], quick: bool):
    """The configured mri2audio DataModule (not set up): the one the runs read."""
    from articulate.directions import get_direction
    from articulate.training.lightning_cli import ArticulateCLI

    stack = get_direction("mri2audio").config_stack(preset=MRI_QUICK_PRESET if quick else None)
    args = [a for c in stack for a in ("--config", c)]
    cli = ArticulateCLI(args=args + ["--trainer.logger=false", "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false"]
                        + extra, run=False)
    return cli.datamodule


def plan_from_args(args: argparse.Namespace, extra: list[str]) -> Plan:
    folds = args.folds  # checked by the parser: whole numbers, comma-separated
    split = args.split or ("kfold" if args.quick else "loso")
    dm = configured_data(extra, args.quick)
    n = 0
    if split == "loso" and folds is None:  # one fold per subject of the data (the phantom's cohort when none is given)
        dm.prepare_data()
        dm.setup("fit")
        n = len(dm.subjects)
    return mri2audio_plan(args.quick, args.seeds, folds, split, args.k, n, explicit=args.split is not None,
                          phantom=dm.data_dir is None)  # A's ceiling row needs the phantom's motion regions


REPRODUCTION = Reproduction(add_arguments, plan_from_args)
