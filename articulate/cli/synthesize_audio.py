"""``articulate synthesize-audio``: tagged MRI -> mel spectrogram -> WAV with an mri2audio checkpoint.

    articulate synthesize-audio --ckpt C.ckpt --mri X.nii.gz --out Y.wav
    articulate synthesize-audio --ckpt C.ckpt --mri MRI_DIR --out OUT_DIR

For each sequence it writes ``Y.wav`` (Griffin-Lim of the predicted mel, at the sample rate the
model was trained with), ``Y.mel.png`` (the predicted mel in dB) and, when the model has an
attention network, ``Y.attention.png`` (the masks a_t over the MRI frames). Folder mode reads every
``.nii.gz/.nii/.npy/.npz`` under ``MRI_DIR`` (recursively) and mirrors the layout under ``OUT_DIR``.

Input rules (the model only knows sequences like those it was trained on: 26 frames of
128 x 128 for the paper's setting, stored in the checkpoint):

* the sequence is resized to the model's grid with a warning when its frame count or frame size
  differs (bilinear in space, linear in time, then the training intensity scaling);
* refused with a one-line error: fewer than 2 frames or a frame count outside 1/4..4x the model's
  (another time scale, not the same kind of recording), frames under 16 pixels or with an aspect
  ratio beyond 2:1, NaN/infinite or constant intensities, unreadable files;
* refused: a missing or unreadable checkpoint, or one of the other direction (wav2uti).

Nothing is written unless every input of the call was read and checked first, and each file is
written to a temporary name and renamed, so a failure never leaves partial output.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from articulate.errors import InputError

log = logging.getLogger(__name__)

MIN_PIXELS = 16
MAX_ASPECT = 2.0
FRAME_RATIO = 4.0


def build_parser() -> argparse.ArgumentParser:
    from articulate.training import options as opt

    p = opt.Parser(prog="articulate synthesize-audio", description=__doc__.split("\n\n")[0])
    opt.path(p, "--ckpt", role="input", required=True, help="mri2audio checkpoint (MRI2AudioTranslator or Lip2AudSpec)")
    opt.path(p, "--mri", role="input", required=True,
             help="a tagged-MRI sequence (.nii.gz, .nii, .npy, .npz) or a folder of them")
    opt.path(p, "--out", role="output", required=True,
             help="output .wav (or a folder) for one sequence; a folder for a folder")
    p.add_argument("--griffin-lim", choices=("auto", "torch", "librosa"), default=None,
                   help="torch: batched, on the model's device; librosa: the paper's mel_to_audio (CPU); "
                        "auto: torch on GPU, librosa on CPU; default: the checkpoint's (librosa unless trained otherwise)")
    opt.number(p, "--n-iter", integer=True, low=1, high=10000, default=32,
               help="Griffin-Lim iterations (librosa's default: 32)")
    opt.number(p, "--batch-size", integer=True, low=1, high=4096, default=8, help="sequences per forward pass in folder mode")
    opt.device(p)
    p.add_argument("--no-png", action="store_true", help="write only the WAV files")
    return p


# ------------------------------------------------------------------------------------------------
# checkpoint


def load_mri2audio(ckpt: str | Path, device: str = "cpu"):
    """The mri2audio inference object of a checkpoint (safe load; other directions are refused)."""
    from articulate.inference.mri2audio import Mri2AudioSynthesizer

    return Mri2AudioSynthesizer.from_checkpoint(ckpt, device)


# ------------------------------------------------------------------------------------------------
# inputs


@dataclass
class Sequence:
    path: Path
    frames: np.ndarray  # as read, [T, H, W]
    model_input: np.ndarray  # [T', H', W'] on the model's grid, in [0, 1]


def check_sequence(path: Path, frames: np.ndarray, grid: tuple[int, int, int]) -> None:
    """Refuse what cannot be the same kind of data as the model's training sequences."""
    t, h, w = frames.shape
    nt = grid[0]
    if t < 2:
        raise InputError(path, f"only {t} frame: a tagged-MRI sequence needs at least 2 frames (the model was trained on {nt})")
    if not nt / FRAME_RATIO <= t <= nt * FRAME_RATIO:
        raise InputError(path, f"{t} frames: the model was trained on {nt}-frame sequences; more than "
                               f"{FRAME_RATIO:g}x fewer or more frames is another time scale (crop or resample the sequence first)")
    if min(h, w) < MIN_PIXELS:
        raise InputError(path, f"frames of {h}x{w} pixels are too small (at least {MIN_PIXELS} px; the model uses {grid[1]}x{grid[2]})")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise InputError(path, f"frames of {h}x{w} pixels: aspect ratio beyond {MAX_ASPECT:g}:1 is not a mid-sagittal field of view")
    if not np.isfinite(frames).all():
        raise InputError(path, f"the volume contains {int((~np.isfinite(frames)).sum())} NaN or infinite values")
    if float(frames.max()) == float(frames.min()):
        raise InputError(path, "every voxel has the same intensity: there is no image to translate")


def read_sequence(path: Path, synth) -> Sequence:
    """Read and check one sequence and put it on the model's grid (``synth``: the inference object)."""
    from articulate.readers.mri import read_mri

    grid = tuple(synth.input_shape)
    frames = read_mri(path).frames
    check_sequence(path, frames, grid)
    if tuple(frames.shape) != tuple(grid):
        log.warning("%s: %s resampled to the model's grid %s (frames x height x width)",
                    path, "x".join(map(str, frames.shape)), "x".join(map(str, grid)))
    if grid[1] != grid[2]:  # a non-square model grid is not ours
        raise InputError(path, f"the checkpoint's frame grid {grid[1]}x{grid[2]} is not square")
    return Sequence(path, frames, synth.prepare(frames).numpy())


def find_inputs(mri: Path, out: Path) -> list[tuple[Path, Path]]:
    """``(input, output wav)`` pairs for a file or a folder."""
    from articulate.readers.mri import mri_suffix

    if not mri.exists():
        raise InputError(mri, "not found")
    if mri.is_file():
        if not mri_suffix(mri):
            raise InputError(mri, "not an MRI sequence (.nii.gz, .nii, .npy, .npz)")
        stem = mri.name[: -len(mri_suffix(mri))]
        if out.suffix.lower() == ".wav":
            return [(mri, out)]
        if out.exists() and not out.is_dir():
            raise InputError(out, "output must be a .wav file or a folder")
        return [(mri, out / f"{stem}.wav")]
    if out.suffix.lower() == ".wav" or (out.exists() and not out.is_dir()):
        raise InputError(out, "--mri is a folder, so --out must be a folder")
    files = sorted(p for p in mri.rglob("*") if p.is_file() and mri_suffix(p))
    if not files:
        raise InputError(mri, "no MRI sequences (.nii.gz, .nii, .npy, .npz) in this folder")
    pairs = []
    for p in files:
        rel = p.relative_to(mri)
        pairs.append((p, out / rel.parent / f"{rel.name[: -len(mri_suffix(p))]}.wav"))
    return pairs


# ------------------------------------------------------------------------------------------------
# synthesis


def predict(synth, x: np.ndarray, device: str):
    """``[B, T, H, W]`` model inputs -> (unit mel ``[B, n_mels, T]``, masks ``[B, T, H, W]`` or None)."""
    import torch

    with torch.no_grad():
        batch = torch.from_numpy(x).to(device)[:, None]
        mel, masks = synth.predict(batch)
    return mel[:, 0], None if masks is None else masks[:, 0]


def mel_to_wav(synth, mel_unit, method: str, n_iter: int) -> np.ndarray:
    """Unit mels ``[B, n_mels, T]`` (torch) -> waveforms ``[B, L]`` float32 in [-1, 1] (the model's Griffin-Lim)."""
    synth.griffin_lim_iters = int(n_iter)
    return synth.waveform(mel_unit, method=method).cpu().numpy().astype(np.float32)


def mel_png(path: Path, mel_unit: np.ndarray, cfg, sr: int) -> None:
    """The predicted mel in dB (time in s, mel band index; low frequencies at the bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from articulate.utils.atomic import atomic_path

    db = mel_unit * (cfg.db_max - cfg.db_min) + cfg.db_min
    seconds = mel_unit.shape[1] * cfg.hop_length / sr
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, mel_unit.shape[0]),
                   vmin=cfg.db_min, vmax=cfg.db_max)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_title("predicted mel spectrogram")
    fig.colorbar(im, ax=ax, label="dB")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def attention_png(path: Path, frames: np.ndarray, masks: np.ndarray, columns: int = 7) -> None:
    """Each MRI frame (gray) with its attention mask a_t overlaid (colour, alpha by mask value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from articulate.utils.atomic import atomic_path

    t = frames.shape[0]
    rows = -(-t // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.5), dpi=100, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= t:
            continue
        ax.imshow(frames[i], cmap="gray", vmin=0, vmax=1)
        rgba = plt.get_cmap("inferno")(masks[i])
        rgba[..., 3] = 0.6 * masks[i]
        ax.imshow(rgba)
        ax.set_title(f"t={i + 1}", fontsize=7)
    fig.suptitle("attention masks a_t over the MRI frames", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def outputs_of(wav_path: Path) -> tuple[Path, Path]:
    base = wav_path.with_suffix("")
    return base.with_name(base.name + ".mel.png"), base.with_name(base.name + ".attention.png")


def main(argv: list[str]) -> int:
    import torch

    args = build_parser().parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    pairs = find_inputs(Path(args.mri), Path(args.out))
    from articulate.utils.atomic import atomic_outputs, check_not_inputs, check_output

    targets = [dst for _, dst in pairs] + ([] if args.no_png else [p for _, dst in pairs for p in outputs_of(dst)])
    check_not_inputs(targets, [Path(args.ckpt), *(src for src, _ in pairs)])  # no output over an input file
    for _, dst in pairs:  # refused before the model is loaded, not after the synthesis
        check_output(dst)
    model = load_mri2audio(args.ckpt, device)
    # Read and check every input before writing anything.
    seqs = [read_sequence(src, model) for src, _ in pairs]
    sr = int(model.sample_rate)
    started = time.perf_counter()
    results = []
    for b in range(0, len(seqs), args.batch_size):
        chunk = seqs[b:b + args.batch_size]
        mel, masks = predict(model, np.stack([s.model_input for s in chunk]), device)
        wavs = mel_to_wav(model, mel, args.griffin_lim, args.n_iter)
        mel_np = mel.float().cpu().numpy()
        masks_np = None if masks is None else masks.float().cpu().numpy()
        for i, s in enumerate(chunk):
            results.append((s, mel_np[i], None if masks_np is None else masks_np[i], wavs[i]))
    elapsed = time.perf_counter() - started

    from articulate.readers.audio import write_audio

    # Every file of the call (each WAV with its PNGs) appears together, or none does (a full disk: one line).
    with atomic_outputs() as out:
        for (_, dst), (s, mel_i, masks_i, wav) in zip(pairs, results):
            write_audio(out.temp(dst), wav, sr)
            if not args.no_png:
                mel_path, att_path = outputs_of(dst)
                mel_png(out.temp(mel_path), mel_i, model.mel_config, sr)
                if masks_i is not None:
                    attention_png(out.temp(att_path), s.model_input, masks_i)
    for (src, dst), (_, _, _, wav) in zip(pairs, results):
        print(f"{src} -> {dst} ({wav.shape[0] / sr:.2f} s at {sr} Hz)")
    from articulate.signal.griffin_lim import resolve_griffin_lim

    method = resolve_griffin_lim(args.griffin_lim or model.griffin_lim, device)
    print(f"{len(pairs)} sequence(s) in {elapsed:.2f} s on {device} (mel + {method} Griffin-Lim, {args.n_iter} iterations)")
    return 0
