"""``articulate track-contours``: tongue contour keypoints for every frame, in DeepLabCut's CSV layout.

    articulate track-contours --ckpt C.ckpt --input VIDEO|IMAGES_DIR|X.ult --out tracks.csv [--overlay out.mp4]

Inputs:

- a video (``.mp4``, ``.avi``, ``.mov``, ``.mkv``): every frame; rows are frame indices;
- a folder of images (``.png``, ``.jpg``, ...; one size): rows are the image file names;
- ``.ult`` raw scan lines with their ``<stem>.param`` (UltraSuite / TaL) or ``<stem>US.txt`` / ``US.txt``
  (AAA): rendered to fan images (:class:`articulate.readers.ultrasound.FanConverter`, ``--size``) shown
  with the probe at the bottom, as DeepLabCut's exports are; coordinates refer to those images
  (the ``--overlay`` video shows them).

Output: ``tracks.csv`` with DeepLabCut's three header rows (scorer / bodyparts / coords) and
``x, y, likelihood`` per keypoint (the likelihood is the heatmap peak), so DLC's own tools, pandas
(``read_csv(header=[0, 1, 2], index_col=0)``) and :func:`articulate.readers.dlc.read_dlc_csv` read
it. ``--overlay`` writes the frames with the contour through the tongue points drawn on them
(dotted where the mean tongue confidence is below ``--threshold``). Both files appear only when
everything succeeded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from articulate.errors import InputError

__all__ = ["main", "load_input", "draw_overlay"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def build_parser() -> argparse.ArgumentParser:
    from articulate.training import options as opt

    p = opt.Parser(prog="articulate track-contours", description=__doc__.split("\n\n")[0])
    opt.path(p, "--ckpt", role="input", required=True,
             help="uti2contour checkpoint (articulate fit --config configs/uti2contour.yaml)")
    opt.path(p, "--input", role="input", required=True, help="video file, folder of images, or .ult (+ .param / US.txt)")
    opt.path(p, "--out", role="output", required=True, help="output CSV (DeepLabCut layout)")
    opt.path(p, "--overlay", role="output", default=None, help="also write the frames with the tracked contour (.mp4)")
    p.add_argument("--probe", choices=("auto", "top", "bottom"), default="auto",
                   help="where the probe is in the input frames (auto: from the fan's shape)")
    opt.size(p, "--size", default="240x320", help="HxW of fan images rendered from .ult (default 240x320)")
    opt.number(p, "--fps", low=0, low_open=True, high=1e6, default=None,
               help="overlay frame rate for image folders (default 10)")
    opt.number(p, "--threshold", low=0, high=1, default=0.3,
               help="mean tongue confidence (0-1) below which a frame is 'not found'")
    opt.number(p, "--batch-size", integer=True, low=1, high=4096, default=32)
    opt.device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    return p


def _param_file(ult: Path) -> Path:
    for cand in (ult.with_suffix(".param"), ult.with_name(ult.stem + "US.txt"), ult.with_name("US.txt")):
        if cand.is_file():
            return cand
    raise InputError(ult, f"no scan parameters beside it ({ult.stem}.param, {ult.stem}US.txt or US.txt)")


def input_files(path: str | Path) -> list[Path]:
    """Every file :func:`load_input` reads for ``path`` (outputs must be none of them)."""
    path = Path(path)
    if path.is_dir():
        return [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if path.suffix.lower() == ".ult":
        try:
            return [path, _param_file(path)]
        except InputError:
            return [path]
    return [path]


def load_input(path: str | Path, size: tuple[int, int] = (240, 320)) -> tuple[np.ndarray, list, float | None, str | None]:
    """``(frames uint8 [F, H, W], row names, fps or None, probe or None)`` of a video, image folder or .ult."""
    from articulate.readers.video import VIDEO_SUFFIXES, read_video

    path = Path(path)
    if not path.exists():
        raise InputError(path, "input not found")
    if path.is_dir():
        from articulate.readers.dlc import load_gray

        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(path, f"no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        frames = [load_gray(p) for p in files]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise InputError(path, f"images differ in size ({', '.join(f'{h}x{w}' for h, w in sorted(shapes))})")
        return np.stack(frames), [p.name for p in files], None, None
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        frames, fps = read_video(path)
        return frames, list(range(len(frames))), fps, None
    if suffix == ".ult":
        from articulate.readers.ultrasound import FanConverter, read_param, read_ult

        params = read_param(_param_file(path))
        scan = read_ult(path, params)
        conv = FanConverter(params, size=size)
        fan = conv(scan)
        frames = np.clip(np.rint(fan[:, ::-1]), 0, 255).astype(np.uint8)  # probe at the bottom, as DLC's exports
        return frames, list(range(len(frames))), params.fps or None, "bottom"
    raise InputError(path, f"unsupported input {suffix or '(no suffix)'}: give a video ({', '.join(VIDEO_SUFFIXES)}), "
                           "a folder of images, or a .ult file")


def _probe_of(frames: np.ndarray) -> str:
    from articulate.contour.fan import estimate_fan

    fan = estimate_fan(frames[: min(len(frames), 200)].mean(0))
    return fan.probe if fan is not None else "bottom"


def draw_overlay(frames: np.ndarray, keypoints: np.ndarray, found: np.ndarray, tongue_points: int) -> np.ndarray:
    """Gray frames with the contour through the tongue points (white on a dark outline; dotted when
    not found) and every keypoint as a small dot."""
    from PIL import Image, ImageDraw

    from articulate.contour.curves import contour_from_keypoints

    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        im = Image.fromarray(frame)
        d = ImageDraw.Draw(im)
        curve = contour_from_keypoints(keypoints[i, :tongue_points], 120)
        if curve is not None:
            pts = [tuple(map(float, p)) for p in curve]
            if found[i]:
                d.line(pts, fill=0, width=3)
                d.line(pts, fill=255, width=1)
            else:
                for a in range(0, len(pts) - 1, 4):
                    d.line(pts[a:a + 2], fill=255, width=1)
        for x, y in keypoints[i]:
            if np.isfinite(x) and np.isfinite(y):
                d.rectangle([x - 1, y - 1, x + 1, y + 1], fill=255, outline=0)
        out[i] = np.asarray(im)
    return out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)  # values, ranges, device and outputs-vs-inputs checked here
    from articulate.contour.tracker import ContourTracker
    from articulate.readers.dlc import write_dlc_csv
    from articulate.utils.atomic import atomic_outputs, check_not_inputs, check_output

    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise InputError(out, "the tracks file must end in .csv")
    overlay = Path(args.overlay) if args.overlay else None
    if overlay is not None and overlay.suffix.lower() not in (".mp4", ".mov", ".mkv", ".avi"):
        raise InputError(overlay, "the overlay must be a video file (.mp4)")
    if overlay is not None and out.resolve() == overlay.resolve():
        raise InputError(overlay, "--overlay and --out are the same file")
    check_not_inputs({"--out": out, "--overlay": overlay}, input_files(args.input))  # e.g. the .ult's .param
    for target in (out, overlay):
        if target is not None:
            check_output(target)
    h, w = args.size

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tracker = ContourTracker.from_checkpoint(args.ckpt, device=device)
    frames, rows, fps, probe = load_input(args.input, (h, w))
    if probe is None:
        probe = _probe_of(frames) if args.probe == "auto" else args.probe
    elif args.probe != "auto":
        probe = args.probe
    kp, conf = tracker(frames, probe=probe, batch_size=args.batch_size, progress=False if args.quiet else None)
    kp, conf = kp.numpy().astype(np.float64), conf.numpy().astype(np.float64)
    found = conf[:, : tracker.tongue_points].mean(1) >= args.threshold

    with atomic_outputs() as outputs:  # both files or neither; a full disk is one line
        if overlay is not None:
            from articulate.readers.video import write_video

            drawn = draw_overlay(frames, kp, found, tracker.tongue_points)
            write_video(outputs.temp(overlay), drawn, fps or args.fps or 10.0)
        write_dlc_csv(outputs.temp(out), rows, tracker.keypoints, kp, conf, scorer="articulate_uti2contour")
    if not args.quiet:
        extra = f" and {overlay}" if overlay is not None else ""
        print(f"tracked {len(frames)} frames (probe at the {probe}); tongue found in {found.mean():.0%}; wrote {out}{extra}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    from articulate.errors import ArticulateError

    try:
        sys.exit(main(sys.argv[1:]))
    except ArticulateError as err:
        print(f"articulate track-contours: error: {err}", file=sys.stderr)
        sys.exit(1)
