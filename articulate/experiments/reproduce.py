"""The papers' tables from one command: every row x fold x seed is one resumable fit + test.

mri2audio (Table 1 of the tagged-MRI paper): Lip2AudSpec, the full model and its three ablations,
leave-one-subject-out (or k-fold by subject) x 3 seeds; Corr2D and PESQ as mean +- std over seeds, with
the floors and ceilings beside them (per-utterance mean mel, ridge probe, oracle) and paired tests of
every row against the full model over the test recordings (per-recording Corr2D, mean over seeds).

wav2uti (Tables 1-2 of the audio-textual diffusion paper): the DNN baseline, audio-only and
audio+text diffusion at 64 / 96 / 112 px (96 and 112 are super-resolution stages of the cascade,
sampled from the 64-px base stage's output); RMSE, PSNR, LPIPS, FID, FVD.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from articulate.experiments.runner import RunSpec, load_records, run_one
from articulate.experiments.tables import aggregate, paired_markdown, paired_tests, write_table


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
    # label -> {metric: key in the reference row's test results, or a constant}
    extra_rows: list[tuple[str, dict[str, str | float]]] = field(default_factory=list)
    extra_source: str | None = None  # the row whose records give extra_rows (default: the second row)
    details: Callable[[Any], dict[str, Any]] | None = None  # per-run plain values kept in the record
    paired: tuple[str, str] | None = None  # (reference row, per-recording metric) for paired tests


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


def mri_rows(quick: bool) -> list[Row]:
    lip = Row("Lip2AudSpec", ["lip2audspec"], [f"--trainer.max_epochs={LIP2AUDSPEC_QUICK_EPOCHS}"] if quick else [])
    return [lip, *MRI_ABLATIONS]


MRI_METRICS = [("test/corr2d", "Corr2D for spectrogram ↑"), ("test/pesq", "PESQ for waveform ↑"),
               ("test/attention_motion_ratio", "Attention in/out of motion ↑")]
# Floors and ceilings, from the full model's runs (same data, split and crops for every row).
MRI_FLOORS = [
    ("Per-utterance mean mel (floor)", {"test/corr2d": "test/corr2d_mean_baseline", "test/pesq": "test/pesq_mean_baseline"}),
    ("Ridge probe (linear, time-aligned)", {"test/corr2d": "test/corr2d_ridge", "test/pesq": "test/pesq_ridge"}),
    # the true mel: Corr2D 1 by definition; PESQ is the Griffin-Lim ceiling
    ("Oracle: true mel + Griffin-Lim (ceiling)", {"test/corr2d": 1.0, "test/pesq": "test/pesq_oracle"}),
]
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
    sums: dict[str, dict[str, list[float]]] = {"corr2d": {}, "corr2d_mean_baseline": {}, "corr2d_ridge": {}}
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
    per = {k: {n: float(np.mean(v)) for n, v in t.items()} for k, t in sums.items() if t}
    return {"per_recording": per, "griffin_lim": model.griffin_lim_method(), "griffin_lim_iters": model.griffin_lim_iters}


def mri2audio_plan(quick: bool, seeds: int, folds: list[int] | None, split: str, k: int | None, n_subjects: int,
                   explicit: bool = True) -> Plan:
    """``split``/``k`` override the configs only when ``explicit`` (else the configs' own split is used,
    e.g. the QUICK preset's k-fold); ``k`` None means the config's value (5 in the header)."""
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
        "Griffin-Lim (Corr2D 1 by definition). Attention in/out of motion: the mean mask of A inside the "
        "phantom's moving-articulator region over outside (rows with A, phantom data)."
    )
    if quick:
        header += ("\n\n**QUICK preset**: a reduced phantom cohort and a few minutes of CPU training per run "
                   f"(every row 4 epochs, but Lip2AudSpec, 19x larger, {LIP2AUDSPEC_QUICK_EPOCHS} epoch(s)); "
                   "figures show the ordering at small scale, not converged models.")
    return Plan(
        experiment="mri2audio", preset=MRI_QUICK_PRESET if quick else None, rows=mri_rows(quick), metrics=MRI_METRICS,
        folds=folds, seeds=list(range(seeds)),
        common=common, header=header, examples=mri2audio_examples,
        extra_rows=MRI_FLOORS, extra_source="Ours", details=mri2audio_details, paired=("Ours", "corr2d"),
    )


# ---------------------------------------------------------------------------------------------
# wav2uti

W_METRICS = [("test/rmse", "RMSE ↓"), ("test/psnr", "PSNR ↑"), ("test/lpips", "LPIPS ↓"),
             ("test/fid", "FID ↓"), ("test/fvd", "FVD ↓")]


W_QUICK_STEPS = 500  # each diffusion row's training in the QUICK preset (steps, not wall time)
W_QUICK_DNN_STEPS = 1000
W_BASE_RESOLUTION = 64  # the cascade's base stage (configs/wav2uti.yaml); 96/112 px are super-resolution stages


def wav2uti_rows(resolutions: list[int], quick: bool) -> list[Row]:
    """DNN, then audio-only and audio+text per resolution; rows above the 64-px base stage test the cascade."""
    base = W_BASE_RESOLUTION
    # QUICK: step bounds per row (the table header states them) keep 2 seeds within ~30 minutes.
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


def wav2uti_plan(quick: bool, seeds: int, resolutions: list[int]) -> Plan:
    header = (
        "# wav2uti: Tables 1-2 on the articulatory phantom\n\n"
        f"Speaker-disjoint test set; seeds {list(range(seeds))}; mean ± std over seeds. Pixels on 0-255. "
        "96/112 px rows are super-resolution stages tested as a cascade: they refine the samples of the "
        "same seed's 64-px row (with --resolutions lacking 64: the downsampled ground truth, an oracle)."
    )
    if quick:
        header += ("\n\n**QUICK preset**: a reduced phantom cohort (10 speakers, 2 for test), 8-frame clips, tiny "
                   "networks at 64 px (base stage only, no super-resolution rows unless --resolutions names them) "
                   f"and a few minutes of CPU training per run (diffusion rows {W_QUICK_STEPS} steps, DNN "
                   f"{W_QUICK_DNN_STEPS} steps); figures show orderings at small scale, not converged models.")
    return Plan(
        experiment="wav2uti", preset="quick" if quick else None,
        rows=wav2uti_rows(resolutions, quick), metrics=W_METRICS, folds=[0],
        seeds=list(range(seeds)), common=[], header=header, examples=wav2uti_examples,
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
    metric_keys = [k for k, _ in plan.metrics]
    table = aggregate(records, [row.label for row in plan.rows], metric_keys)
    source = plan.extra_source or plan.rows[1].label
    for label, mapping in plan.extra_rows:
        src = [{"spec": {**r["spec"], "model": label},
                "metrics": {m: (k if isinstance(k, (int, float)) else r["metrics"].get(k)) for m, k in mapping.items()}}
               for r in records if r["spec"]["model"] == source]
        table += aggregate(src, [label], metric_keys)
    header = "\n\n".join([plan.header, *label_notes(records)])
    footer = ""
    if plan.paired:
        reference, metric = plan.paired
        tests = paired_tests(records, reference, [row.label for row in plan.rows], metric)
        footer = paired_markdown(tests, f"Paired tests against {reference} over the test recordings (per-recording "
                                        f"{metric}, mean over seeds; two-sided paired t-test and Wilcoxon signed-rank; "
                                        "an ordering is stated only where both give p < 0.05):")
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
    todo = specs(plan, extra_args)
    start = time.perf_counter()
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
