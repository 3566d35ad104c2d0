"""`articulate score --ref R --pred P --metrics corr2d,pesq,... [--json]`: score other systems' outputs.

``R`` and ``P`` are both files or both folders; in folders, files are paired by their relative
path without the extension (``spk1/utt3.wav`` in R with ``spk1/utt3.wav`` or ``.npy`` in P).
Every pair is scored with the same metric classes the training callbacks use:

- ``.npy`` arrays ``[..., H, W]``: spectrograms (Corr2D) or frames/videos (RMSE, PSNR, LPIPS,
  FID; FVD needs ``[T, H, W]``). Float arrays are in [0, 1] unless ``--pixel-range`` says
  otherwise; uint8 arrays are 0-255.
- audio (``.wav``, ``.flac``, ``.ogg``; any sample rate): PESQ, after resampling to 16 kHz.
- videos (``.mp4``, ``.avi``, ``.mov``): gray uint8 frames; a pair is cut to the shorter one.
- ``contour_msd`` (with ``--contour-ckpt``, a uti2contour checkpoint): the tongue is tracked in every
  frame of both and the contours compared by mean sum of distances (px; mm with ``--mm-per-pixel``),
  with ``contour_found_fraction``.

``--json`` prints one object whose keys are the metric names (``corr2d``, ``pesq``, ``lpips``,
``fid``, ``fvd``, ``rmse``, ``psnr``); a metric computed with random-initialised features
(``--random-init``, tests only) is keyed ``<name>_NOT_COMPARABLE``. The output is strict JSON: NaN
(no value, e.g. PESQ failed on every pair) is printed as ``null``, an infinite value (PSNR of identical
images) as the string ``"inf"``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from articulate.errors import InputError

METRIC_NAMES = ("corr2d", "pesq", "lpips", "fid", "fvd", "rmse", "psnr", "contour_msd")
AUDIO_EXT = {".wav", ".flac", ".ogg"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv"}
ARRAY_EXT = {".npy"}
SUPPORTED = AUDIO_EXT | VIDEO_EXT | ARRAY_EXT
IMAGE_METRICS = {"corr2d", "lpips", "fid", "fvd", "rmse", "psnr", "contour_msd"}


def _kind(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in AUDIO_EXT:
        return "audio"
    if ext in VIDEO_EXT:
        return "video"
    if ext in ARRAY_EXT:
        return "array"
    raise InputError(path, f"unsupported file type {ext or '(none)'}; score reads {', '.join(sorted(SUPPORTED))}")


def pair_files(ref: Path, pred: Path) -> list[tuple[Path, Path]]:
    """(reference, prediction) pairs: two files, or two folders matched by relative path without extension."""
    if not ref.exists():
        raise InputError(ref, "reference not found")
    if not pred.exists():
        raise InputError(pred, "prediction not found")
    if ref.is_file() != pred.is_file():
        raise InputError(pred, f"--ref and --pred must both be files or both be folders ({ref} is "
                               f"{'a file' if ref.is_file() else 'a folder'})")
    if ref.is_file():
        _kind(ref), _kind(pred)
        return [(ref, pred)]

    def scorable(root: Path) -> list[Path]:
        return [p.relative_to(root) for p in sorted(root.rglob("*"))
                if p.is_file() and p.suffix.lower() in SUPPORTED and not p.name.startswith(".")]

    refs, preds = scorable(ref), scorable(pred)
    if not refs:
        raise InputError(ref, f"no scorable files ({', '.join(sorted(SUPPORTED))}) in this folder")
    pred_set = set(preds)
    by_stem: dict[Path, list[Path]] = {}
    for q in preds:
        by_stem.setdefault(q.with_suffix(""), []).append(q)
    pairs, used, missing = [], set(), []
    for r in refs:
        if r in pred_set:  # same relative name
            q = r
        else:  # same relative name up to the extension (e.g. .avi reference, .mp4 prediction)
            cands = by_stem.get(r.with_suffix(""), [])
            if len(cands) > 1:
                raise InputError(pred / r.with_suffix(""), f"several predictions match {r}: "
                                                          f"{', '.join(c.name for c in cands)}")
            if not cands:
                missing.append(r)
                continue
            q = cands[0]
        used.add(q)
        pairs.append((ref / r, pred / q))
    if missing:
        raise InputError(pred / missing[0], f"no prediction for reference {ref / missing[0]} "
                                            f"({len(missing)} of {len(refs)} references unmatched)")
    extra = len(pred_set - used)
    if extra:
        print(f"articulate score: {extra} file(s) in {pred} have no reference and are ignored", file=sys.stderr)
    return pairs


def _load_array(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":  # else numpy reads the bytes as a pickle and suggests loading it unsafely
            raise InputError(path, "not a readable .npy array (no NumPy header)")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(path, f"not a readable .npy array ({err})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "uif":
        raise InputError(path, f"expected a numeric array, got dtype {getattr(arr, 'dtype', type(arr))}")
    if not np.isfinite(arr.astype(np.float64, copy=False)).all():
        raise InputError(path, "array contains NaN or infinite values")
    return arr


def _load_images(path: Path, pixel_range: str | None) -> tuple[np.ndarray, str]:
    """``[..., H, W]`` float64 and its pixel range."""
    if _kind(path) == "video":
        from articulate.readers.video import read_video

        frames, _ = read_video(path)
        return frames.astype(np.float64), "byte"
    arr = _load_array(path)
    if arr.ndim < 2:
        raise InputError(path, f"image metrics need arrays [..., H, W], got shape {arr.shape}")
    rng = pixel_range or ("byte" if arr.dtype == np.uint8 else "unit")
    return arr.astype(np.float64), rng


def _load_audio(path: Path) -> tuple[np.ndarray, int]:
    from articulate.readers.audio import read_audio

    wav, sr = read_audio(path, mono=True)
    return np.asarray(wav, dtype=np.float32), int(sr)


def _build(name: str, args: argparse.Namespace) -> Any:
    import articulate.metrics as M

    weights = args.weights_dir
    if name == "corr2d":
        return M.Corr2D(undefined=float("nan"))  # as MATLAB: a constant image has no correlation
    if name == "pesq":
        return M.PESQ(mode=args.pesq_mode)
    if name == "rmse":
        return M.RMSE(pixel_range="byte")
    if name == "psnr":
        return M.PSNR(pixel_range="byte")
    if name == "lpips":
        return M.LPIPS(net=args.lpips_net, pixel_range="byte", weights_path=weights, random_init=args.random_init)
    if name == "fid":
        return M.FID(weights=args.fid_weights, weights_path=weights, random_init=args.random_init, pixel_range="byte",
                     input_size=75 if args.random_init else 299)
    if name == "fvd":
        return M.FVD(weights_path=weights, random_init=args.random_init, pixel_range="byte",
                     clip_frames=args.fvd_clip_frames or None, input_size=64 if args.random_init else 224)
    if name == "contour_msd":
        if not args.contour_ckpt:
            raise InputError(None, "contour_msd tracks the tongue in both videos: give a uti2contour checkpoint with "
                                   "--contour-ckpt (`articulate train uti2contour`)")
        from articulate.checkpoints import Checkpoint

        Checkpoint.read(args.contour_ckpt, direction="uti2contour")  # refused here, before any frame is read
        return M.ContourMSD(pred_kind="images", target_kind="images", contour_ckpt=args.contour_ckpt,
                            probe=args.probe, mm_per_pixel=args.mm_per_pixel)
    raise ValueError(name)


def _to_byte(x: np.ndarray, pixel_range: str) -> np.ndarray:
    """Every image pair goes to the 0-255 scale first, so mixed inputs (uint8 video vs float npy) compare."""
    if pixel_range == "unit":
        return x * 255.0
    if pixel_range == "signed":
        return (x + 1.0) * 127.5
    return x


def score(pairs: list[tuple[Path, Path]], metrics: list[str], args: argparse.Namespace) -> dict[str, float]:
    import torch

    objs = {name: _build(name, args) for name in metrics}
    image_metrics = [m for m in metrics if m in IMAGE_METRICS]
    fed = {name: 0 for name in metrics}
    for i, (ref_path, pred_path) in enumerate(pairs):
        idx = torch.tensor([i])
        kind_r, kind_p = _kind(ref_path), _kind(pred_path)
        if (kind_r == "audio") != (kind_p == "audio"):
            raise InputError(pred_path, f"cannot score a {kind_p} file against the {kind_r} reference {ref_path}")
        if kind_r == "audio":
            # Folders may mix audio with arrays/videos: each pair gets the metrics that apply to it.
            if "pesq" in objs:
                (ref_wav, ref_sr), (pred_wav, pred_sr) = _load_audio(ref_path), _load_audio(pred_path)
                if pred_sr != ref_sr:  # PESQ resamples both to 16 kHz; bring them to one rate first
                    from articulate.signal.resample import resample

                    pred_wav = resample(pred_wav, pred_sr, ref_sr)
                objs["pesq"].update([pred_wav], [ref_wav], ref_sr, sample_index=idx)
                fed["pesq"] += 1
            continue
        if not image_metrics:
            continue
        ref, ref_range = _load_images(ref_path, args.pixel_range)
        pred, pred_range = _load_images(pred_path, args.pixel_range)
        if "video" in (kind_r, kind_p):
            if ref.ndim != 3 or pred.ndim != 3:
                raise InputError(pred_path, f"a video pairs only with frames [T, H, W]; shapes {ref.shape} and {pred.shape}")
            n = min(ref.shape[0], pred.shape[0])
            ref, pred = ref[:n], pred[:n]
        if ref.shape != pred.shape:
            raise InputError(pred_path, f"shape {pred.shape} differs from the reference {ref_path} {ref.shape}")
        r = torch.from_numpy(_to_byte(ref, ref_range))[None]
        p = torch.from_numpy(_to_byte(pred, pred_range))[None]
        for name in image_metrics:
            if name == "fvd":
                if ref.ndim != 3:
                    raise InputError(ref_path, f"FVD needs videos [T, H, W], got shape {ref.shape}")
                objs[name].update(p[:, None], r[:, None], sample_index=idx)
            else:
                objs[name].update(p, r, sample_index=idx)
            fed[name] += 1
    for name, count in fed.items():
        if count == 0:
            need = "audio files" if name == "pesq" else ".npy arrays or videos"
            raise InputError(args.ref, f"{name} needs {need}; none were given")
    results: dict[str, float] = {}
    for name, metric in objs.items():
        value = float(metric.compute())
        key = name if metric.comparable else f"{name}_NOT_COMPARABLE"
        results[key] = value
        if name == "contour_msd":
            summary = metric.summary()
            results["contour_found_fraction"] = summary["found_fraction"]
            if math.isfinite(summary["msd_mm"]):
                results["contour_msd_mm"] = summary["msd_mm"]
        if name == "pesq" and metric.failed:
            print(f"articulate score: PESQ could not score {metric.failed} of {metric.failed + metric.scored} pairs "
                  "(excluded from the mean)", file=sys.stderr)
    return results


def build_parser() -> argparse.ArgumentParser:
    from articulate.training import options as opt

    p = opt.Parser(prog="articulate score", description=__doc__.split("\n\n")[0],
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    opt.path(p, "--ref", role="input", required=True, help="reference file or folder")
    opt.path(p, "--pred", role="input", required=True, help="predicted file or folder (same relative names)")
    p.add_argument("--metrics", required=True, help=f"comma-separated, from {','.join(METRIC_NAMES)}")
    p.add_argument("--json", action="store_true",
                   help='print one strict-JSON object {metric: value}: NaN (no value) as null, infinity (PSNR of '
                        'identical images) as the string "inf"')
    p.add_argument("--pixel-range", choices=("unit", "signed", "byte"), default=None,
                   help="scale of float .npy images: unit=[0,1] (default), signed=[-1,1], byte=0-255")
    p.add_argument("--pesq-mode", choices=("wb", "nb"), default="wb", help="wide band (default) or narrow band")
    p.add_argument("--lpips-net", choices=("squeeze", "alex", "vgg"), default="squeeze", help="LPIPS trunk (paper: squeeze)")
    p.add_argument("--fid-weights", choices=("fid", "torchvision"), default="fid",
                   help="fid: TF FID Inception (comparable with published FIDs); torchvision: its inception_v3")
    opt.number(p, "--fvd-clip-frames", integer=True, low=0, high=100000, default=16, help="FVD clip length (0: whole video)")
    opt.path(p, "--contour-ckpt", role="input", default=None, help="uti2contour checkpoint that tracks the tongue (contour_msd)")
    p.add_argument("--probe", choices=("top", "bottom"), default="top",
                   help="where the probe is in the scored frames (contour_msd; framework renders: top)")
    opt.number(p, "--mm-per-pixel", low=0, low_open=True, high=100, default=None,
               help="pixel size of the frames: contour_msd also in mm")
    opt.path(p, "--weights-dir", role="input", default=None,
             help="folder holding pretrained weight files (default: the torch hub cache, then articulate's cache)")
    p.add_argument("--random-init", action="store_true",
                   help="TEST ONLY: random feature networks; results are labelled NOT COMPARABLE")
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown or not metrics:
        parser.error(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(METRIC_NAMES)}")
    metrics = list(dict.fromkeys(metrics))
    pairs = pair_files(Path(args.ref), Path(args.pred))
    results = score(pairs, metrics, args)
    if args.json:
        from articulate.training.options import dumps

        print(dumps(results))
    else:
        width = max(len(k) for k in results)
        print(f"{len(pairs)} pair(s) scored")
        for k, v in results.items():
            print(f"{k:<{width}}  {'n/a' if math.isnan(v) else f'{v:.4f}'}")
    return 0


__all__ = ["main", "pair_files", "score", "build_parser", "METRIC_NAMES"]
