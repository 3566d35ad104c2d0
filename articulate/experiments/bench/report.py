"""Short human-readable lines of a bench result for the terminal (the JSON holds everything)."""

from __future__ import annotations

from typing import Any

UNITS = {"mri2audio": "seq", "wav2uti": "clips"}
_KNOWN = {"train", "train_quick", "data_loading", "inference", "lip2audspec_inference", "sampling", "flops", "memory"}


def _fmt(x, unit: str = "", digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def _train(r: dict[str, Any], unit: str) -> str:
    if "error" in r:
        return r["error"]
    text = f"{_fmt(r.get('items_per_second'))} {unit}/s"
    if r.get("batches_per_second") is not None:
        text += (f" (loop {_fmt(r['batches_per_second'])} batches/s, {_fmt(r.get('cpu_seconds_per_batch'))} CPU s/batch, "
                 f"sys {_fmt(100 * (r.get('sys_share') or 0), '%', 0)})")
    return text


def _memory(r: dict[str, Any], key: str) -> str:
    batch = f"batch {r.get('batch_size')}"
    if r.get("measured"):
        return f"{_fmt(r.get(key), ' MB', 0)} measured ({batch})"
    est = r.get(f"estimated_{key}")
    text = f"~{_fmt(est, ' MB', 0)} estimated ({batch}, from batches {[p['batch_size'] for p in r.get('probes', [])]})" \
        if est is not None else ""
    for why in ("skipped", "error"):
        if r.get(why):
            text = f"{text}; {r[why]}" if text else r[why]
    return text or "n/a"


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    gpu = (result.get("environment") or {}).get("device") == "cuda"
    mem_key = "gpu_peak_mb" if gpu else "rss_peak_mb"
    for name, sec in result.items():
        if name in ("quick", "environment") or not isinstance(sec, dict):
            continue
        if "error" in sec and len(sec) == 1:
            rows.append((name, sec["error"]))
            continue
        unit = UNITS.get(name, "items")
        for r in sec.get("train", []):
            rows.append((f"{name} train [{r.get('variant', '?')}]", _train(r, unit)))
        for r in sec.get("train_quick", []):
            rows.append((f"{name} train QUICK preset [{r.get('variant', '?')}]", _train(r, unit)))
        if "data_loading" in sec:
            dl = sec.get("data_loading") or {}
            rows.append((f"{name} data loading", dl.get("error") or f"{_fmt(dl.get('items_per_second'))} {unit}/s"))
        for key, label in (("inference", "translator"), ("lip2audspec_inference", "lip2audspec")):
            for r in sec.get(key, []):
                rows.append((f"{name} {label} latency [{r.get('variant', '?')}]", r.get("error") or
                             f"mel {_fmt(r['mel_ms'], ' ms', 1)} + waveform {_fmt(r['waveform_ms'], ' ms', 1)}"))
        for r in sec.get("flops", []):
            if "error" in r:
                rows.append((f"{name} denoiser FLOPs", r["error"]))
                continue
            rows.append((f"{name} denoiser FLOPs {r['resolution']}px", f"{r['flops_per_evaluation'] / 1e9:,.0f} GFLOP per evaluation "
                         f"({r['frames']} frames), {r['flops_per_video_second'] / 1e12:,.0f} TFLOP per second of video "
                         f"at {r['steps']} steps"))
        for r in sec.get("sampling", []):
            if "error" in r:
                rows.append((f"{name} sampling", r["error"]))
                continue
            rows.append((f"{name} sample {r['resolution']}px {r['steps']} steps [{r['variant']}]",
                         f"{_fmt(r['seconds_per_video_second'], ' s', 1)} per second of video"))
            if r.get("estimated_seconds_per_video_second_at_default_steps") is not None and r["steps"] != r.get("default_steps"):
                rows.append((f"  -> at the default {r['default_steps']} steps (estimated)",
                             f"{_fmt(r['estimated_seconds_per_video_second_at_default_steps'], ' s', 0)} per second of video"))
        for r in sec.get("memory", []):
            rows.append((f"{name} peak memory {r.get('config', '?')}", _memory(r, mem_key)))
        for key in sorted(set(sec) - _KNOWN):
            rows.append((f"{name} {key}", "see the JSON"))
    return rows
