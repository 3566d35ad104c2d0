"""One ultrasound recording exported as a video: frames, sound, synchronisation, fan, transcript.

``read_video_utterance(path)`` is the video counterpart of
:func:`articulate.readers.ultrasound.read_utterance`:

- **audio**: ``<stem>.wav`` beside the video wins; otherwise the video's own audio track
  (``audio_source`` says which). Neither: one ``InputError`` naming the file.
- **synchronisation**: a ``<stem>.param`` / ``<stem>US.txt`` beside the video supplies the frame rate
  (``FramesPerSec``) and where the first frame lies in the audio (``TimeInSecsOfFirstFrame``)
  and wins over the container. Without one, the container's timestamps place the streams: the
  first frame lies ``video_start - audio_start`` s into the audio (a separate ``.wav`` is taken
  to start at the container's time 0). Both streams are then trimmed to their common span
  (:func:`articulate.readers.ultrasound.common_span`), recorded in ``trim``.
- **geometry**: ``roi="auto"`` crops to the detected fan and blacks out what lies outside it
  (scale marks, UI); ``roi=(x, y, w, h)`` crops to that box; ``roi="full"`` keeps the frame.
  ``probe="auto"|"top"|"bottom"`` says where the probe is in the file; frames are flipped so that
  the probe is at the top, the convention of ``.ult`` renders (:mod:`articulate.readers.fan`).
- **text**: ``<stem>.txt`` prompt, else the words of ``<stem>.TextGrid`` in the kept span, unless
  ``text`` is given (e.g. a manifest's transcript).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from articulate.errors import InputError
from articulate.readers.fan import FanRegion, apply_roi, orient_frames
from articulate.readers.ultrasound import common_span, read_param, read_transcript, utterance_files

__all__ = ["VideoUtterance", "read_video_utterance", "video_sync", "locate_audio"]


@dataclass
class VideoUtterance:
    """A synchronised video recording: frame 0 starts at audio sample 0.

    ``frames`` uint8 ``[F, H, W]`` (probe at the top, cropped to ``roi``), ``fps``, ``audio``
    float32 ``[L]`` at ``sr``; ``t0`` where the first decoded frame lay in the audio before
    trimming (s); ``sync`` how that was decided; ``trim`` what was cut; ``fan`` the detected fan
    (in the original frame's pixels) when ``roi="auto"``; ``probe_side`` where the probe was.
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray
    sr: int
    t0: float
    text: str
    speaker: str
    path: Path
    audio_source: str
    audio_path: Path
    sync: dict
    trim: dict
    fan: FanRegion | None = None
    roi: tuple[int, int, int, int] | None = None
    probe_side: str = "top"
    text_source: str | None = None
    words: list = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def locate_audio(path: Path, files: dict | None = None, audio: str | Path | None = None) -> tuple[str, Path]:
    """``(audio_source, audio_path)`` of a video recording: ``audio`` when given, else the ``.wav``
    beside it (``"wav"``), else its own audio track (``"container"``); ``InputError`` when none."""
    from articulate.readers.container import has_audio

    files = files if files is not None else utterance_files(path)
    wav = Path(audio) if audio is not None else files["wav"]
    if wav is not None:
        return "wav", wav
    if has_audio(path):
        return "container", path
    stem = files["stem"]
    raise InputError(path, f"no audio: the video has no audio track and there is no {stem.name}.wav beside it")


def video_sync(path: Path, container_fps: float, audio_source: str, param: Path | None) -> dict:
    """Frame rate and first-frame time of a video recording, and where they come from."""
    from articulate.readers.container import stream_start_times

    starts = stream_start_times(path)
    out: dict = {"container_fps": container_fps, "video_start_s": starts["video"], "audio_start_s": starts["audio"]}
    if param is not None:
        params = read_param(param)
        out.update(fps=float(params.fps), t0=float(params.time_first_frame), source=f"param ({param.name})")
        if container_fps and abs(params.fps - container_fps) > 0.01 * params.fps:
            out["note"] = (f"the container says {container_fps:g} fps; {param.name}'s FramesPerSec={params.fps:g} "
                           "is used")
        return out
    video_start = starts["video"] or 0.0
    if audio_source == "container":
        t0 = video_start - (starts["audio"] or 0.0)
        source = "container timestamps"
    else:
        t0 = video_start
        source = "container timestamps (the .wav taken to start at the container's time 0)"
    out.update(fps=float(container_fps), t0=float(t0), source=source)
    return out


def read_video_utterance(
    path: str | Path,
    sr: int | None = None,
    roi: str | tuple[int, int, int, int] | None = "auto",
    probe: str = "auto",
    audio: str | Path | None = None,
    param: str | Path | None = None,
    text: str | None = None,
) -> VideoUtterance:
    """Read an ultrasound video with its audio, synchronised and trimmed (see the module docstring).

    ``audio`` / ``param`` override the files found beside the video (a manifest's columns);
    ``sr`` resamples the audio.
    """
    from articulate.readers.audio import read_audio
    from articulate.readers.video import read_video

    path = Path(path)
    frames, container_fps = read_video(path)
    files = utterance_files(path)
    stem = files["stem"]
    assert isinstance(stem, Path)
    audio_source, audio_path = locate_audio(path, files, audio)
    param_path = Path(param) if param is not None else files["param"]
    sound, audio_sr = read_audio(audio_path, sr=sr)
    sync = video_sync(path, container_fps, audio_source, param_path)
    fps, t0 = sync["fps"], sync["t0"]
    span = common_span(frames.shape[0], fps, t0, sound.shape[0], audio_sr)
    if span["frame_stop"] == 0:
        raise InputError(path, f"video ({frames.shape[0]} frames at {fps:g} fps from {t0:g} s) and audio "
                               f"({sound.shape[0] / audio_sr:.3f} s, {audio_source}) do not overlap")
    trim = {
        "frames_dropped_start": span["frame_start"],
        "frames_dropped_end": frames.shape[0] - span["frame_stop"],
        "samples_dropped_start": span["sample_start"],
        "samples_dropped_end": sound.shape[0] - span["sample_stop"],
        "original_frames": int(frames.shape[0]),
        "original_samples": int(sound.shape[0]),
        "original_time_first_frame": float(t0),
    }
    kept = frames[span["frame_start"]:span["frame_stop"]]
    try:
        kept, fan, box = apply_roi(kept, roi)
    except ValueError as err:
        raise InputError(path, f"{err}; pass roi=(x, y, w, h) or roi='full'") from None
    kept, side = orient_frames(kept, probe, fan)
    t_start, t_stop = span["sample_start"] / audio_sr, span["sample_stop"] / audio_sr
    found_text, speaker, text_source, words = read_transcript(files, stem.parent.name, t_start, t_stop)
    words = [replace(w, xmin=max(w.xmin, t_start) - t_start, xmax=min(w.xmax, t_stop) - t_start) for w in words]
    if text:
        found_text, text_source = text, "given"
    return VideoUtterance(
        frames=np.ascontiguousarray(kept), fps=float(fps), audio=sound[span["sample_start"]:span["sample_stop"]],
        sr=int(audio_sr), t0=float(t0), text=found_text, speaker=speaker, path=path, audio_source=audio_source,
        audio_path=Path(audio_path), sync=sync, trim=trim, fan=fan, roi=box, probe_side=side,
        text_source=text_source, words=words,
    )
