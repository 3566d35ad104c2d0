"""The papers' tables from one command: every row x fold x seed is one resumable fit + test.

mri2audio (Table 1 of the tagged-MRI paper): Lip2AudSpec, the full model and its three ablations,
leave-one-subject-out (or k-fold by subject) x 3 seeds; Corr2D and PESQ as mean +- std over seeds, with
the floors and ceilings beside them (per-utterance mean mel, ridge probe, oracle) and paired tests of
every row against the full model over the test recordings (per-recording Corr2D, mean over seeds).

wav2uti (Tables 1-2 of the audio-textual diffusion paper): the DNN baseline, audio-only and
audio+text diffusion at 64 / 96 / 112 px (96 and 112 are super-resolution stages of the cascade,
sampled from the 64-px base stage's output); RMSE, PSNR, LPIPS, FID, FVD and the tongue-contour MSD
(a phantom contour tracker, trained once first unless ``--contour-ckpt`` names one); beside them the
floors (training-mean frame, ridge probe) and the ceiling (the true video), and paired tests per
test recording between rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from articulate.experiments.runner import RunSpec, load_records, run_one
from articulate.experiments.tables import aggregate, paired_markdown, paired_tests, write_rows_csv, write_table


@dataclass
class Row:
    """A table row: variant overlays (``configs/<direction>/<variant>.yaml``) on the direction's config stack."""

    label: str
    variants: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    # A super-resolution row: the row (same fold and seed) whose checkpoint is its base stage, so
    # that its test samples the whole cascade.
    low_res_from: str | None = None


@dataclass
class Plan:
    experiment: str  # the direction
    preset: str | None  # its preset (QUICK) or None for the paper configuration
    rows: list[Row]
    metrics: list[tuple[str, str]]  # (key in the test results, column title)
    folds: list[int]
    seeds: list[int]
    common: list[str]  # overrides applied to every run (QUICK presets, data location)
    header: str
    examples: Callable[[Any], dict[str, np.ndarray]] | None = None
    # Rows read from another row's records: (label, {metric: key in those records, or "=text" shown as
    # it is}, source row label; default the second row).
    extra_rows: list[tuple] = field(default_factory=list)
    csv_metrics: list[str] = field(default_factory=list)  # aggregated into table.csv, not shown in table.md
    # Run before the rows (e.g. training the contour tracker): (out_dir, logger) -> overrides for every row.
    prepare: Callable[[Path, str], list[str]] | None = None
    # Paired tests on per-recording values: (row A, row B) pairs, (per-recording key, title) measures, and
    # pseudo-rows (label -> (source row, key suffix)), e.g. a floor logged beside a model.
    pairs: list[tuple[str, str]] = field(default_factory=list)
    paired_metrics: list[tuple[str, str]] = field(default_factory=list)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: Callable[[list[dict[str, Any]], list[dict[str, Any]], Path], list[str]] | None = None
    # per-run plain values kept in the record (its "per_recording" entry feeds the paired tests)
    details: Callable[[Any], dict[str, Any]] | None = None


# ---------------------------------------------------------------------------------------------
# mri2audio

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
# The QUICK preset: the CPU training preset of `make train-mri2audio QUICK=1` shortened further
# (configs/mri2audio/reproduce_quick.yaml) so that 5 rows x 2 seeds fit in ~30 minutes on 2 cores.
MRI_QUICK_PRESET = "reproduce_quick"


def mri2audio_examples(cli) -> dict[str, np.ndarray]:
    """First test recording: target vs predicted mel (and attention masks), both waveforms."""
    import torch

    model, dm = cli.model.eval(), cli.datamodule
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        mri = batch["mri"][:1].to(model.device)
        mel, masks = model.predict_with_masks(mri)
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
    """Per test recording (crops averaged): Corr2D of the model, the mean mel and the ridge probe, for the
    paired tests; and the Griffin-Lim method the run's PESQ used."""
    import torch

    from articulate.metrics.functional import corr2d

    model, dm = cli.model.eval(), cli.datamodule
    keys = ("corr2d", "corr2d_mean_baseline", "corr2d_ridge")
    sums: dict[str, dict[str, list[float]]] = {k: {} for k in keys}
    with torch.no_grad():
        for batch in dm.test_dataloader():
            mri, mel = batch["mri"].to(model.device), batch["mel"].to(model.device)
            preds = {"corr2d": model.predict_with_masks(mri)[0], "corr2d_ridge": model.ridge_prediction(batch)}
            preds["corr2d_mean_baseline"] = model.baseline_prediction(batch["utterance"].to(model.device))
            names = [dm.item_info("test", int(i))["id"] for i in batch["sample_index"]]
            for key, pred in preds.items():
                if pred is None:
                    continue
                for name, r in zip(names, corr2d(pred.to(mel), mel).tolist()):
                    sums[key].setdefault(name, []).append(r)
    # the runner's per-recording format: {"recording": [ids], <measure>: [values]} (None where not scored)
    names = sorted(sums["corr2d"])
    per: dict[str, list] = {"recording": names}
    for key in keys:
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
        common.append(f"--data.init_args.split={split}")
    if k is not None:
        common.append(f"--data.init_args.k={k}")
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
        "same for the mask's standard deviation over the frames (1.8 for an untrained A on the QUICK phantom); A's ceiling "
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
        paired_metrics=[("corr2d", "Corr2D (per recording)")], aliases=MRI_ALIASES,
    )


# ---------------------------------------------------------------------------------------------
# wav2uti

W_METRICS = [("test/rmse", "RMSE ↓"), ("test/psnr", "PSNR ↑"), ("test/lpips", "LPIPS ↓"),
             ("test/fid", "FID ↓"), ("test/fvd", "FVD ↓"),
             ("test/contour_msd", "Contour MSD vs real, px ↓"), ("test/contour_msd_truth", "Contour MSD vs truth, px ↓"),
             ("test/contour_found_fraction", "Tongue found ↑")]
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
    """Every row's ``contour_ckpt``: the given checkpoint, or the tracker trained first (a resumable record)."""

    def prepare(out_dir: Path, logger: str) -> list[str]:
        path = ckpt
        if path is None:
            done = (Path(out_dir) / "runs" / f"{spec.run_id}.json").exists()
            print(f"[contour] {spec.model}" + (" (done, skipped)" if done else ""), flush=True)
            path = run_one(spec, out_dir, logger=logger).get("checkpoint")
            if not path:
                raise RuntimeError(f"{spec.model}: the run kept no checkpoint (see {Path(out_dir) / 'logs' / spec.run_id})")
        return [f"--model.init_args.contour_ckpt={path}"]

    return prepare


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
        "clips, penalty chosen on the validation clips); the true video (its RMSE, PSNR, LPIPS, FID, FVD and its "
        "contour distance to itself are 0 / ∞ by definition: trivial). LPIPS/FID/FVD are not computed for the "
        "floors. Contour MSD (px at the row's resolution; mm in table.csv): the tongue contour tracked in generated "
        "vs real frames (vs real), or generated frames vs the phantom's true surface (vs truth); frames whose "
        "tongue the tracker finds (mean confidence ≥ 0.3): 'Tongue found'."
    )
    if quick:
        header += ("\n\n**QUICK preset**: a reduced phantom cohort (10 speakers, 2 for test), 8-frame clips, tiny "
                   "networks at 64 px (base stage only, no super-resolution rows unless --resolutions names them) "
                   f"and a few minutes of CPU training per run (diffusion rows {W_QUICK_STEPS} steps, DNN "
                   f"{W_QUICK_DNN_STEPS} steps, contour tracker {spec.overrides[0].split('=')[-1] if spec and spec.overrides else 'the given'} "
                   "steps); figures show orderings at small scale, not converged models.")
    floors = {"test/rmse": "rmse", "test/psnr": "psnr", "test/contour_msd": "contour_msd",
              "test/contour_msd_truth": "contour_msd_truth", "test/contour_found_fraction": "contour_found_fraction",
              "test/contour_msd_mm": "contour_msd_mm", "test/contour_msd_truth_mm": "contour_msd_truth_mm"}
    trivial = {k: "=0 (trivial)" for k in ("test/rmse", "test/lpips", "test/fid", "test/fvd", "test/contour_msd",
                                            "test/contour_msd_mm")}
    extra_rows = [
        ("Training-mean frame (floor)", {m: f"test/{k}_mean_baseline" for m, k in floors.items()}, dnn),
        ("Ridge probe (floor)", {m: f"test/{k}_ridge" for m, k in floors.items()}, dnn),
        ("True video (ceiling)", {**trivial, "test/psnr": "=∞ (trivial)", "test/contour_msd_truth": "test/contour_msd_truth_oracle",
                                  "test/contour_found_fraction": "test/contour_found_fraction_oracle",
                                  "test/contour_msd_truth_mm": "test/contour_msd_truth_oracle_mm"}, dnn),
    ]
    aliases = {"Ridge probe (floor)": (dnn, "_ridge"), "Training-mean frame (floor)": (dnn, "_mean_baseline")}
    pairs = [(at, dnn), (ao, dnn), (at, ao), (dnn, "Ridge probe (floor)")]
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
                        ("contour_msd_truth", "contour MSD vs truth (px)")],
        notes=wav2uti_notes(dnn, at, ao, spec, contour_ckpt), csv_metrics=W_CSV_METRICS,
    )


# ---------------------------------------------------------------------------------------------


def row_configs(plan: Plan, row: Row) -> list[str]:
    """The row's ``--config`` stack, in the registry's one order."""
    from articulate.directions import get_direction

    return get_direction(plan.experiment).config_stack(row.variants, plan.preset)


def specs(plan: Plan, extra_args: list[str] | None = None) -> list[RunSpec]:
    """Seed-major order, so that a partial run already holds complete trials."""
    return [
        RunSpec(plan.experiment, row.label, row_configs(plan, row), plan.common + row.overrides + list(extra_args or []),
                fold, seed)
        for seed in plan.seeds for fold in plan.folds for row in plan.rows
    ]


def label_notes(records: list[dict[str, Any]]) -> list[str]:
    """Metrics computed with random-initialised stand-in feature networks are flagged in the table."""
    flagged = sorted({k for r in records for k in r["metrics"] if "NOT_COMPARABLE" in k})
    if not flagged:
        return []
    return ["**Stand-in features**: " + ", ".join(flagged) + " were computed with random-initialised feature "
            "networks (pretrained weights not installed): NOT COMPARABLE with published figures."]


def finish(plan: Plan, out_dir: Path) -> dict[str, Any]:
    records = [r for r in load_records(out_dir) if r["spec"]["model"] in {row.label for row in plan.rows}]
    # a metric logged under a NOT_COMPARABLE name fills its column, and the header says so
    for r in records:
        for key in list(r["metrics"]):
            if key.endswith("_NOT_COMPARABLE"):
                r["metrics"].setdefault(key[: -len("_NOT_COMPARABLE")], r["metrics"][key])
    metric_keys = [k for k, _ in plan.metrics] + list(plan.csv_metrics)
    table = aggregate(records, [row.label for row in plan.rows], metric_keys)
    for extra in plan.extra_rows:
        label, mapping = extra[0], extra[1]
        source = extra[2] if len(extra) > 2 else plan.rows[1].label
        read = {m: k for m, k in mapping.items() if not k.startswith("=")}
        src = [{"spec": {**r["spec"], "model": label}, "metrics": {m: r["metrics"].get(k) for m, k in read.items()}}
               for r in records if r["spec"]["model"] == source]
        (row,) = aggregate(src, [label], metric_keys)
        for m, k in mapping.items():
            if k.startswith("="):  # a stated value (e.g. the true video's RMSE: 0 by definition)
                row[f"{m}_mean"], row[f"{m}_std"] = k[1:], None
        table.append(row)
    paired = paired_tests(records, plan.pairs, plan.paired_metrics, plan.aliases) if plan.pairs else []
    notes = plan.notes(table, paired, out_dir) if plan.notes is not None else []
    header = "\n\n".join([plan.header, *notes, *label_notes(records)])
    footer = ""
    if paired:
        footer = ("## Paired tests per test recording\n\nEach recording's value is the mean over seeds of the "
                  "mean over its test frames; the tests pair the recordings both rows scored (two-sided, "
                  "uncorrected for the number of comparisons).\n\n" + paired_markdown(paired))
        write_rows_csv(paired, out_dir / "paired_tests.csv")
    write_table(table, plan.metrics, out_dir / "table.md", header=header, footer=footer)
    from articulate.experiments.plots import bar_chart, example_figures

    bar_chart(table, plan.metrics, out_dir / "metrics.png", title=plan.experiment)
    example_figures(out_dir, plan.experiment)
    return {"table": table, "records": len(records)}


def with_base_stage(spec: RunSpec, plan: Plan, out_dir: Path) -> RunSpec:
    """A super-resolution row's spec with ``low_res_ckpt`` = its base row's checkpoint (same fold
    and seed; seed-major order runs the base row first)."""
    row = next((r for r in plan.rows if r.label == spec.model), None)
    if row is None or not row.low_res_from:
        return spec
    base_id = RunSpec(spec.experiment, row.low_res_from, [], fold=spec.fold, seed=spec.seed).run_id
    path = out_dir / "runs" / f"{base_id}.json"
    ckpt = json.loads(path.read_text()).get("checkpoint") if path.exists() else None
    if not ckpt:
        raise RuntimeError(f"{spec.model}: its base stage {row.low_res_from!r} (run {base_id}) has no checkpoint "
                           f"in {path}; the cascade cannot be tested")
    return replace(spec, overrides=[*spec.overrides, f"--model.init_args.low_res_ckpt={ckpt}"])


def reproduce(plan: Plan, out_dir: Path, extra_args: list[str] | None = None, logger: str = "csv") -> dict[str, Any]:
    out_dir = Path(out_dir)
    start = time.perf_counter()
    shared = plan.prepare(out_dir, logger) if plan.prepare is not None else []
    todo = specs(plan, list(extra_args or []) + shared)
    for i, spec in enumerate(todo, 1):
        done = (out_dir / "runs" / f"{spec.run_id}.json").exists()
        print(f"[{i}/{len(todo)}] {spec.model} fold {spec.fold} seed {spec.seed}" + (" (done, skipped)" if done else ""),
              flush=True)
        want_examples = plan.examples if (spec.fold == plan.folds[0] and spec.seed == plan.seeds[0]) else None
        if not done:
            spec = with_base_stage(spec, plan, out_dir)
        run_one(spec, out_dir, logger=logger, examples=want_examples, details=plan.details)
    summary = finish(plan, out_dir)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
