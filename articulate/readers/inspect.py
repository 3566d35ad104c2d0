"""What the readers see in a file, an utterance stem or a dataset folder (``articulate inspect``).

Every reader runs for real (files are decoded, not just sniffed), so a file that inspects cleanly
will also load in training; a bad one raises the same ``InputError`` training would.
The result is a JSON-friendly dict (str paths, Python numbers). Audio gets a level check
(:mod:`articulate.signal.level`: peak / RMS dBFS, near-silent and clipped flags under
``problems``); video its synchronisation and the detected fan (:mod:`articulate.readers.fan`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from articulate.errors import InputError
from articulate.readers.audio import audio_info, read_audio
from articulate.readers.container import VIDEO_SUFFIXES, probe
from articulate.readers.dataset_index import index_dataset
from articulate.readers.mri import mri_suffix, read_mri
from articulate.readers.ultrasound import (
    common_span,
    read_param,
    read_prompt,
    read_transcript,
    read_ult,
    utterance_files,
)
from articulate.readers.video import read_video, video_info
from articulate.signal.level import audio_level, level_problems

__all__ = ["inspect_path"]

_AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".caf", ".mp3")
_STEM_SUFFIXES = (".ult", ".param", ".txt")
_TEXTGRID_SUFFIXES = (".textgrid",)
FIRST_RECORDINGS = 5


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def _level(wav: np.ndarray, sr: int) -> dict:
    level = audio_level(wav, sr)
    problems = level_problems(level)
    return {
        "peak": _r(level["peak"]),
        "peak_dbfs": _r(level["peak_dbfs"], 2),
        "rms_dbfs": _r(level["rms_dbfs"], 2),
        "voiced_fraction": _r(level["voiced_fraction"], 3),
        "clipped_runs": level["clipped_runs"],
        "problems": problems or "none",
    }


def _audio(path: Path) -> dict:
    """An audio file, or the audio track of a video file, decoded in full, with its level check."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        info = probe(path)
        stream = next((s for s in info["streams"] if s["type"] == "audio"), {})
        container, subtype = (info["format"] or "video").split(",")[0].upper(), stream.get("codec", "unknown")
    else:
        header = audio_info(path)
        container, subtype = header["format"], header["subtype"]
    multi, sr = read_audio(path, mono=False)  # decodes everything: catches NaNs and unreadable data too
    channels, samples = int(multi.shape[0]), int(multi.shape[1])
    return {
        "kind": "audio",
        "path": str(path),
        "format": f"{container} {subtype}",
        "shape": [channels, samples] if channels > 1 else [samples],
        "dtype": "float32 (as read; stored " + subtype + ")",
        "channels": channels,
        "sample_rate": sr,
        "samples": samples,
        "duration_s": _r(samples / sr),
        **_level(multi, sr),
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


def _span_report(span: dict, num_frames: int, fps: float, t0: float, samples: int, sr: int, source: str,
                 images: str) -> dict:
    """How two streams were synchronised and what trimming to their common span dropped, in words too."""
    kept = span["frame_stop"] - span["frame_start"]
    out = {
        "source": source,
        "first_frame_s": _r(t0, 6),
        "image_end_s": _r(t0 + num_frames / fps),
        "audio_end_s": _r(samples / sr),
        "frames": kept,
        "duration_s": _r(kept / fps),
        "frames_dropped_start": span["frame_start"],
        "frames_dropped_end": num_frames - span["frame_stop"],
        "audio_samples_dropped_start": span["sample_start"],
        "audio_samples_dropped_end": samples - span["sample_stop"],
    }
    notes = []
    if span["frame_start"]:
        notes.append(f"{images} starts {-t0:.3f} s before the audio: first {span['frame_start']} frame(s) dropped")
    if span["sample_start"]:
        notes.append(f"audio before the first frame ({span['sample_start'] / sr:.3f} s) dropped")
    over = t0 + num_frames / fps - samples / sr
    if num_frames - span["frame_stop"]:
        what = (f"{images} runs {over:.3f} s past the end of the audio" if over > 0.5 / fps
                else "the last frame is not fully covered by the audio")
        notes.append(f"{what}: last {num_frames - span['frame_stop']} frame(s) dropped")
    if samples - span["sample_stop"]:
        notes.append(f"audio after the last frame ({(samples - span['sample_stop']) / sr:.3f} s) dropped")
    out["trimmed"] = "; ".join(notes) if notes else "nothing (the streams cover the same span)"
    return out


def _video(path: Path, fan_png: Path | None = None) -> dict:
    from articulate.readers.fan import detect_fan, write_fan_png
    from articulate.readers.video_utterance import locate_audio, video_sync

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
        "container": info["container"],
        "video_codec": info["video_codec"],
        "audio_track": f"{info['audio_codec']} {info['audio_sr']} Hz" if info["audio_codec"] else None,
        "variable_frame_rate": info.get("variable_frame_rate"),
        "frame_interval_ms": "-".join(f"{v:g}" for v in info["frame_interval_ms"]) if info.get("frame_interval_ms") else None,
    }
    files = utterance_files(path)
    try:
        source, audio_path = locate_audio(path, files)
    except InputError as err:
        source, audio_path = None, None
        out["note"] = f"not usable as a recording: {err.problem}"
    if audio_path is not None:
        out["audio_source"] = source
        out["audio"] = _audio(audio_path)
        sync = video_sync(path, fps, source, files["param"])
        audio = out["audio"]
        span = common_span(frames.shape[0], sync["fps"], sync["t0"], audio["samples"], audio["sample_rate"])
        if span["frame_stop"] == 0:
            raise InputError(path, f"video and audio do not overlap (first frame at {sync['t0']:g} s, {sync['source']})")
        out["synchronised"] = _span_report(span, frames.shape[0], sync["fps"], sync["t0"], audio["samples"],
                                           audio["sample_rate"], sync["source"], "video")
        out["synchronised"]["fps"] = sync["fps"]
        if "note" in sync:
            out["synchronised"]["note"] = sync["note"]
        text, speaker, text_source, _ = read_transcript(files, path.parent.name)
        out.update(transcript=text or None, transcript_source=text_source, speaker=speaker)
    try:
        fan = detect_fan(frames)
    except ValueError as err:
        out["fan"] = f"not detected ({err})"
        if fan_png is not None:
            raise InputError(path, f"cannot write {fan_png}: {err}") from None
        return out
    out["fan"] = {**fan.describe(), "probe": f"{fan.apex_side} (flipped to the top when read)" if fan.apex_side == "bottom"
                  else "top (kept)"}
    if fan_png is not None:
        out["fan"]["png"] = str(write_fan_png(fan_png, frames[frames.shape[0] // 2], fan))
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
    span_s: tuple = (None, None)  # the audio kept by synchronisation (s): the TextGrid words in it
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
            out["synchronised"] = _span_report(
                span, int(scan.shape[0]), params.fps, params.time_first_frame, audio["samples"], audio["sample_rate"],
                f"{files['param'].name}: TimeInSecsOfFirstFrame={params.time_first_frame:g}, FramesPerSec={params.fps:g}",
                "ultrasound")
            span_s = (span["sample_start"] / audio["sample_rate"], span["sample_stop"] / audio["sample_rate"])
    else:
        out["note"] = f"no {stem.name}.ult beside it: scan parameters and audio only"
        if audio is not None:
            # Upper bound for a matching .ult: frames that fit between the first frame and the audio's end.
            frames_possible = int((audio["duration_s"] - params.time_first_frame) * params.fps)
            out["max_frames_audio_covers"] = max(frames_possible, 0)
    if audio is not None:
        out["audio"] = audio
    text, speaker, text_source, words = read_transcript(files, stem.parent.name, *span_s)
    out["transcript"] = text or None
    out["transcript_source"] = text_source
    if files.get("textgrid"):
        out["textgrid_words"] = [f"{w.text} {w.xmin:.3f}-{w.xmax:.3f} s" for w in words] or "none"
    out["speaker"] = speaker
    return out


def _recording_checks(rec) -> dict:
    """Level of the audio a recording uses and, for a video, its fan (decodes both)."""
    from articulate.readers.fan import detect_fan

    out: dict = {}
    is_video = rec.image is not None and rec.image.suffix.lower() in VIDEO_SUFFIXES
    if rec.image is not None and rec.image.suffix.lower() == ".ult":
        # Training reads the scan lines with their parameters: a dataset that inspects cleanly must too.
        if rec.param is None:
            raise InputError(rec.image, f"no scan parameter file beside it ({rec.image.stem}.param or {rec.image.stem}US.txt)")
        out["frames"] = int(read_ult(rec.image, read_param(rec.param)).shape[0])
    source = rec.audio if rec.audio is not None else (rec.image if is_video else None)
    if source is not None:
        wav, sr = read_audio(source, mono=False)
        level = _level(wav, sr)
        out.update(peak_dbfs=level["peak_dbfs"], rms_dbfs=level["rms_dbfs"], audio_s=_r(wav.shape[1] / sr, 3))
        if level["problems"] != "none":
            out["problems"] = "; ".join(level["problems"])
    if is_video:
        frames, _ = read_video(rec.image)
        try:
            fan = detect_fan(frames)
            x, y, w, h = fan.bbox
            out["fan"] = f"{w}x{h}+{x}+{y} probe {fan.apex_side} {100 * fan.fraction:.0f}%"
        except ValueError as err:
            out["fan"] = f"not detected ({err})"
    return out


def _dataset(root: Path) -> dict:
    records = index_dataset(root)
    manifest = root if root.is_file() else root / "manifest.csv"
    kinds = Counter(r.kind for r in records)
    sources = Counter(r.extra["audio_source"] for r in records if r.extra.get("audio_source"))
    return {
        "kind": "dataset",
        "path": str(root),
        "source": "manifest" if manifest.is_file() else "discovered",
        "recordings": len(records),
        "subjects": len({r.subject for r in records}),
        "utterances": len({r.utterance for r in records}),
        "kinds": dict(sorted(kinds.items())),
        "with_audio": sum(r.audio is not None or r.extra.get("audio_source") == "container" for r in records),
        "video_audio_sources": dict(sorted(sources.items())) if sources else None,
        "with_transcript": sum(bool(r.transcript) for r in records),
        "checked": f"the first {min(FIRST_RECORDINGS, len(records))} recording(s): audio level and, for video, the fan",
        "first_recordings": [
            {
                "id": r.id,
                "subject": r.subject,
                "utterance": r.utterance,
                "kind": r.kind,
                "image": str(r.image) if r.image else None,
                "audio": str(r.audio) if r.audio else ("(in the video)" if r.extra.get("audio_source") == "container" else None),
                "audio_source": r.extra.get("audio_source"),
                "param": str(r.param) if r.param else None,
                "transcript": r.transcript,
                **_recording_checks(r),
            }
            for r in records[:FIRST_RECORDINGS]
        ],
    }


def _textgrid(path: Path) -> dict:
    from articulate.readers.textgrid import read_textgrid, textgrid_words, words_tier

    grid = read_textgrid(path)
    tier = words_tier(grid)
    words = textgrid_words(grid)
    return {
        "kind": "textgrid",
        "path": str(path),
        "duration_s": _r(grid.xmax - grid.xmin),
        "tiers": [f"{t.name} ({t.kind}, {len(t.items)})" for t in grid.tiers] or "none",
        "words_tier": tier.name if tier else None,
        "transcript": " ".join(w.text for w in words) or None,
    }


def inspect_path(path: str | Path, fan_png: str | Path | None = None) -> dict:
    """Describe a file, an ultrasound utterance stem or a dataset folder / manifest.

    ``fan_png`` (video files only): write a PNG of the detected fan over the middle frame there.
    """
    path = Path(path)
    if fan_png is not None and not (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES):
        raise InputError(path, "--fan-png needs a video file (.mp4, .avi, .mov, .mkv)")
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
        return _video(path, Path(fan_png) if fan_png is not None else None)
    if path.suffix.lower() in _TEXTGRID_SUFFIXES:
        return _textgrid(path)
    if path.suffix.lower() in _AUDIO_SUFFIXES:
        out = _audio(path)
        files = utterance_files(path)
        if files["txt"] or files["textgrid"]:
            out["transcript"] = read_transcript(files, path.parent.name)[0] or None
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
    raise InputError(path, f"unknown file type {path.suffix or '(no suffix)'}: expected audio, MRI, ultrasound, video, "
                           "a TextGrid or a dataset folder")
