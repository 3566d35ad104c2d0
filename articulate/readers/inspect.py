"""What the readers see in a file, an utterance stem or a dataset folder (``articulate inspect``).

Every reader runs for real (files are decoded, not just sniffed), so a file that inspects cleanly
will also load in training; a bad one raises the same ``InputError`` training would.
The result is a JSON-friendly dict (str paths, Python numbers).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from articulate.errors import InputError
from articulate.readers.audio import audio_info, read_audio
from articulate.readers.dataset_index import index_dataset
from articulate.readers.mri import mri_suffix, read_mri
from articulate.readers.ultrasound import common_span, read_param, read_prompt, read_ult, utterance_files
from articulate.readers.video import VIDEO_SUFFIXES, read_video, video_info

__all__ = ["inspect_path"]

_AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".caf", ".mp3")
_STEM_SUFFIXES = (".ult", ".param", ".txt")
FIRST_RECORDINGS = 5


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def _audio(path: Path) -> dict:
    info = audio_info(path)
    wav, sr = read_audio(path)  # decodes everything: catches NaNs and unreadable data too
    return {
        "kind": "audio",
        "path": str(path),
        "format": f"{info['format']} {info['subtype']}",
        "shape": [info["channels"], info["frames"]] if info["channels"] > 1 else [info["frames"]],
        "dtype": "float32 (as read; stored " + info["subtype"] + ")",
        "channels": info["channels"],
        "sample_rate": sr,
        "samples": info["frames"],
        "duration_s": _r(info["duration_s"]),
        "peak": _r(np.abs(wav).max()),
        "rms_dbfs": _r(20 * np.log10(max(float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))), 1e-10)), 2),
    }


def _mri(path: Path) -> dict:
    seq = read_mri(path)
    t, h, w = seq.frames.shape
    out = {
        "kind": "mri",
        "path": str(path),
        "shape": [t, h, w],
        "dtype": str(seq.frames.dtype),
        "frames": t,
        "height": h,
        "width": w,
        "pixel_mm": list(seq.pixel_mm) if seq.pixel_mm else None,
        "frame_s": _r(seq.frame_s, 6) if seq.frame_s else None,
        "fps": _r(seq.fps, 3) if seq.fps else None,
        "duration_s": _r(t * seq.frame_s) if seq.frame_s else None,
        "value_range": [_r(seq.frames.min()), _r(seq.frames.max())],
    }
    stem = path.with_name(path.name[: -len(mri_suffix(path))])
    wav = stem.with_name(stem.name + ".wav")
    if wav.is_file():
        out["audio"] = _audio(wav)
    return out


def _video(path: Path) -> dict:
    frames, fps = read_video(path)
    info = video_info(path)
    out = {
        "kind": "video",
        "path": str(path),
        "shape": list(frames.shape),
        "dtype": str(frames.dtype),
        "frames": int(frames.shape[0]),
        "fps": _r(fps, 3),
        "duration_s": _r(frames.shape[0] / fps),
        "video_codec": info["video_codec"],
        "audio_track": f"{info['audio_codec']} {info['audio_sr']} Hz" if info["audio_codec"] else None,
    }
    wav = path.with_suffix(".wav")
    if wav.is_file():
        out["audio"] = _audio(wav)
    return out


def _ultrasound(target: Path) -> dict:
    files = utterance_files(target)
    stem = files["stem"]
    assert isinstance(stem, Path)
    if files["param"] is None:
        if files["ult"] is not None:
            raise InputError(files["ult"], f"no scan parameter file beside it ({stem.name}.param or {stem.name}US.txt)")
        raise InputError(target, "not an ultrasound utterance (no .param or US.txt beside it)")
    params = read_param(files["param"])
    out: dict = {
        "kind": "ultrasound",
        "path": str(target),
        "stem": str(stem),
        "files": {k: (str(v) if v else None) for k, v in files.items() if k != "stem"},
        "scan_parameters": {k: (_r(v, 6) if isinstance(v, float) else v) for k, v in params.to_dict().items()},
        "frame_bytes": params.frame_bytes,
        "fps": params.fps,
    }
    audio = _audio(files["wav"]) if files["wav"] else None
    if files["ult"] is not None:
        scan = read_ult(files["ult"], params)
        out.update(
            shape=list(scan.shape),
            dtype=str(scan.dtype),
            frames=int(scan.shape[0]),
            duration_s=_r(scan.shape[0] / params.fps),
        )
        if audio is not None:
            span = common_span(scan.shape[0], params.fps, params.time_first_frame, audio["samples"], audio["sample_rate"])
            if span["frame_stop"] == 0:
                raise InputError(stem, "ultrasound and audio do not overlap (check TimeInSecsOfFirstFrame)")
            out["synchronised"] = {
                "frames": span["frame_stop"] - span["frame_start"],
                "duration_s": _r((span["frame_stop"] - span["frame_start"]) / params.fps),
                "frames_dropped_start": span["frame_start"],
                "frames_dropped_end": int(scan.shape[0]) - span["frame_stop"],
                "audio_samples_dropped_start": span["sample_start"],
                "audio_samples_dropped_end": audio["samples"] - span["sample_stop"],
            }
    else:
        out["note"] = f"no {stem.name}.ult beside it: scan parameters and audio only"
        if audio is not None:
            # Upper bound for a matching .ult: frames that fit between the first frame and the audio's end.
            frames_possible = int((audio["duration_s"] - params.time_first_frame) * params.fps)
            out["max_frames_audio_covers"] = max(frames_possible, 0)
    if audio is not None:
        out["audio"] = audio
    text, speaker = read_prompt(files["txt"], stem.parent.name)
    out["transcript"] = text or None
    out["speaker"] = speaker
    return out


def _dataset(root: Path) -> dict:
    records = index_dataset(root)
    manifest = root if root.is_file() else root / "manifest.csv"
    kinds = Counter(r.kind for r in records)
    return {
        "kind": "dataset",
        "path": str(root),
        "source": "manifest" if manifest.is_file() else "discovered",
        "recordings": len(records),
        "subjects": len({r.subject for r in records}),
        "utterances": len({r.utterance for r in records}),
        "kinds": dict(sorted(kinds.items())),
        "with_audio": sum(r.audio is not None for r in records),
        "with_transcript": sum(bool(r.transcript) for r in records),
        "first_recordings": [
            {
                "id": r.id,
                "subject": r.subject,
                "utterance": r.utterance,
                "kind": r.kind,
                "image": str(r.image) if r.image else None,
                "audio": str(r.audio) if r.audio else None,
                "transcript": r.transcript,
            }
            for r in records[:FIRST_RECORDINGS]
        ],
    }


def inspect_path(path: str | Path) -> dict:
    """Describe a file, an ultrasound utterance stem or a dataset folder / manifest."""
    path = Path(path)
    if path.is_dir():
        return _dataset(path)
    name = path.name.lower()
    if not path.exists():
        # A stem given without suffix (``speaker/001`` for ``speaker/001.ult`` + ``.param`` ...).
        found = utterance_files(path)
        if path.suffix.lower() not in _STEM_SUFFIXES and (found["param"] or found["ult"]):
            return _ultrasound(path)
        raise InputError(path, "file or folder not found")
    if name.endswith(".csv"):
        return _dataset(path)
    if mri_suffix(path):
        return _mri(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _video(path)
    if path.suffix.lower() in _AUDIO_SUFFIXES:
        out = _audio(path)
        files = utterance_files(path)
        if files["txt"]:
            out["transcript"] = read_prompt(files["txt"], path.parent.name)[0] or None
        if files["param"] or files["ult"]:
            out["utterance_stem"] = str(files["stem"])
        return out
    if path.suffix.lower() in _STEM_SUFFIXES:
        if path.suffix.lower() == ".txt" and not path.name.endswith("US.txt"):  # a prompt, not AAA params
            found = utterance_files(path)
            if not (found["param"] or found["ult"]):
                text, speaker = read_prompt(path, path.parent.name)
                return {"kind": "transcript", "path": str(path), "transcript": text or None, "speaker": speaker}
        return _ultrasound(path)
    raise InputError(path, f"unknown file type {path.suffix or '(no suffix)'}: expected audio, MRI, ultrasound, video or a dataset folder")
