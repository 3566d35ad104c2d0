"""How much the phantom looks and sounds like real recordings: the same measures on phantom and real data.

- Frame change: mean absolute difference (0-255 pixel units) between ultrasound fan images one
  and six frames apart at 60 fps, inside the fan, at 64 x 64 pixels: what a wav2uti model sees
  (``datamodules.wav2uti``: fan images or videos area-resized to 64 px, linearly resampled in
  time to 60 fps). Speckle redrawn every frame makes the 1-frame change large and the 6-frame
  change barely larger; speckle that moves with the tissue changes little between neighbouring
  frames and more as the tongue moves on.
- F0: pYIN (librosa) on the voiced frames (noise called voiced at the search range's edge is
  dropped); the spread in semitones about the recording's (or the speaker's) median. Monotone
  speech has a small spread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

FPS = 60.0
SIZE = 64
LAGS = (1, 6)


# --------------------------------------------------------------------------------------------- frames


def resample_frames(frames: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """The wav2uti DataModule's resampling in time (``articulate.transforms.video``), as float32."""
    from articulate.transforms.video import resample_frames as resample

    return resample(np.asarray(frames), fps_in, fps_out).astype(np.float32)


def frame_change(frames: np.ndarray, mask: np.ndarray, fps: float, lags: tuple[int, ...] = LAGS,
                 fps_out: float = FPS) -> dict[int, float]:
    """Mean |frame[t + lag] - frame[t]| inside ``mask`` after resampling to ``fps_out`` (lags in output frames)."""
    x = resample_frames(frames, fps, fps_out)
    m = np.asarray(mask, bool)
    out = {}
    for lag in lags:
        if x.shape[0] <= lag:
            raise ValueError(f"{x.shape[0]} frames at {fps_out:g} fps: too few for a lag of {lag}")
        out[int(lag)] = float(np.abs(x[lag:, m] - x[:-lag, m]).mean())
    return out


def _area(frames: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None]
    return F.interpolate(x, size=(size, size), mode="area")[:, 0].numpy()


def scan_fan_frames(scanlines: np.ndarray, params, size: int = SIZE, oversample: int = 4) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Scan lines -> uint8 fan images [F, size, size] and the fan mask.

    The fan is drawn at ``oversample`` x ``size`` (bilinear) and area-averaged to ``size``, as an
    exported ultrasound video is area-resized: sub-pixel speckle averages out instead of aliasing.
    ``oversample=1`` is the DataModule's direct bilinear fan (``FanConverter(params, (size, size))``).
    """
    from articulate.readers.ultrasound import FanConverter

    fan = FanConverter(params, size=(size * oversample, size * oversample), order=1)
    img = np.asarray(fan(np.asarray(scanlines, np.float32)))
    if oversample > 1:
        img = _area(img, size)
        mask = _area(fan.mask[None].astype(np.float32), size)[0] > 0.999
    else:
        mask = fan.mask
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def ult_fan_frames(path: str | Path, size: int = SIZE, oversample: int = 4) -> tuple[np.ndarray, np.ndarray, float]:
    """A raw ``.ult`` (with its ``.param`` or AAA ``US.txt``) as (fan images, fan mask, fps); every frame."""
    from articulate.errors import InputError
    from articulate.readers.ultrasound import read_param, read_ult, utterance_files

    files = utterance_files(path)
    if files["ult"] is None or files["param"] is None:
        raise InputError(path, "needs a .ult and its .param (or US.txt) beside it")
    params = read_param(files["param"])
    img, mask = scan_fan_frames(read_ult(files["ult"], params), params, size, oversample)
    return img, mask, float(params.fps)


def video_fan_frames(path: str | Path, size: int = SIZE, threshold: float = 10.0) -> tuple[np.ndarray, np.ndarray,
                                                                                             float]:
    """An ultrasound video as (uint8 frames area-resized to size x size, fan mask, fps).

    The fan is where some frame is brighter than ``threshold``: exported videos are black outside it.
    """
    from articulate.readers.video import read_video

    frames, fps = read_video(path)
    small = np.clip(np.rint(_area(frames, size)), 0, 255).astype(np.uint8)
    return small, small.max(axis=0) > threshold, float(fps)


def ultrasound_change(path: str | Path, size: int = SIZE, lags: tuple[int, ...] = LAGS,
                      oversample: int = 4) -> dict[int, float]:
    """:func:`frame_change` of a real recording: a video (.avi/.mp4/...) or a raw .ult (drawn as
    :func:`scan_fan_frames` draws it)."""
    from articulate.readers.video import VIDEO_SUFFIXES

    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        frames, mask, fps = video_fan_frames(path, size)
    else:
        frames, mask, fps = ult_fan_frames(path, size, oversample)
    return frame_change(frames, mask, fps, lags)


def cohort_change(root: str | Path, size: int = SIZE, lags: tuple[int, ...] = LAGS, limit: int | None = None,
                  oversample: int = 4) -> dict[int, float]:
    """:func:`frame_change` pooled over a wav2uti cohort's recordings (each frame pair weighs the same)."""
    from articulate.readers.dataset_index import index_dataset
    from articulate.readers.ultrasound import read_param, read_ult

    sums = {int(k): 0.0 for k in lags}
    counts = {int(k): 0 for k in lags}
    recs = [r for r in index_dataset(root) if r.kind == "ultrasound"][:limit]
    for r in recs:
        params = read_param(r.param)
        frames, mask = scan_fan_frames(read_ult(r.image, params), params, size, oversample)
        n = math.floor(len(frames) * FPS / params.fps + 1e-9)
        for lag, v in frame_change(frames, mask, params.fps, lags).items():
            sums[lag] += v * (n - lag)
            counts[lag] += n - lag
    return {k: sums[k] / max(counts[k], 1) for k in sums}


# --------------------------------------------------------------------------------------------- F0


def video_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """The audio track of a video file (mono float32 at ``sr``), through the ffmpeg the video reader uses."""
    import subprocess

    from articulate.errors import InputError
    from articulate.readers.video import _ffmpeg

    proc = subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vn", "-ac", "1",
                           "-ar", str(int(sr)), "-f", "s16le", "-"], capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise InputError(path, "no readable audio track in this video")
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.float32) / 32768.0


def read_speech(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Speech of a real recording at ``sr``: a WAV (first channel: AAA keeps sync pulses in the
    second), the .wav beside a .ult / .param stem, or a video's audio track."""
    from articulate.readers.audio import read_audio
    from articulate.readers.ultrasound import utterance_files
    from articulate.readers.video import VIDEO_SUFFIXES

    p = Path(path)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return video_audio(p, sr)
    if p.suffix.lower() != ".wav":
        p = utterance_files(p)["wav"] or p
    wav, _ = read_audio(p, sr=sr, mono=False)
    return wav[0]



def f0_track(wav: np.ndarray, sr: int, fmin: float = 50.0, fmax: float = 600.0, gate_db: float = -35.0) -> np.ndarray:
    """pYIN F0 (Hz) every 10 ms, NaN where unvoiced.

    Real recordings carry room and scanner noise that pYIN calls voiced at the edge of its search
    range: frames within a semitone of ``fmin``/``fmax`` and frames more than ``-gate_db`` dB below
    the loud speech (99th percentile of the frame energy) are dropped.
    """
    import librosa

    wav = np.asarray(wav, np.float64)
    if sr != 16000:  # pYIN's cost grows with the sample rate; speech F0 needs no more than 16 kHz
        wav, sr = librosa.resample(wav, orig_sr=sr, target_sr=16000), 16000
    hop = round(0.01 * sr)
    frame = 1 << math.ceil(math.log2(2.5 * sr / fmin))  # at least 2.5 periods of the lowest F0
    f0, voiced, _ = librosa.pyin(wav, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame, hop_length=hop)
    rms = librosa.feature.rms(y=wav, frame_length=frame, hop_length=hop)[0][: len(f0)]
    db = 20.0 * np.log10(rms + 1e-10)
    db -= np.percentile(db, 99)
    semitone = 2.0 ** (1.0 / 12.0)
    keep = voiced & (f0 > fmin * semitone) & (f0 < fmax / semitone) & (db > gate_db)
    return np.where(keep, f0, np.nan)


def semitones(f0: np.ndarray, ref: float | None = None) -> np.ndarray:
    """Voiced F0 values in semitones about ``ref`` (default: their median)."""
    f = np.asarray(f0, np.float64)
    f = f[np.isfinite(f) & (f > 0)]
    if f.size == 0:
        return f
    return 12.0 * np.log2(f / (ref if ref is not None else float(np.median(f))))


def f0_stats(wav: np.ndarray, sr: int, **kwargs) -> dict[str, float]:
    """Median F0 (Hz), its spread (s.d., semitones) and the number of voiced 10 ms frames."""
    f0 = f0_track(wav, sr, **kwargs)
    st = semitones(f0)
    voiced = f0[np.isfinite(f0)]
    return {"median_hz": float(np.median(voiced)) if voiced.size else float("nan"),
            "sd_semitones": float(np.std(st)) if st.size > 1 else float("nan"), "voiced_frames": int(st.size)}


def cohort_f0(root: str | Path, limit: int | None = None, **kwargs) -> dict[str, float]:
    """F0 spread of a phantom cohort: per recording (mean of the recordings' s.d.) and per speaker
    (s.d. of all the speaker's voiced frames about the speaker's median, mean over speakers), and the
    correlation over speakers between median F0 and vocal-tract length (from the ground truth)."""
    import json

    from articulate.readers.audio import read_audio
    from articulate.readers.dataset_index import index_dataset

    per_rec, per_spk, vtl = [], {}, {}
    for r in index_dataset(root)[:limit]:
        wav, sr = read_audio(r.audio)
        f0 = f0_track(wav, sr, **kwargs)
        st = semitones(f0)
        if st.size > 10:
            per_rec.append(float(np.std(st)))
        per_spk.setdefault(r.subject, []).append(f0[np.isfinite(f0)])
        traj = Path(r.audio).with_name(Path(r.audio).stem + ".traj.npz")
        if traj.is_file():
            with np.load(traj) as z:
                vtl[r.subject] = float(json.loads(str(z["subject"]))["vtl_cm"])
    spk_sd, med, lengths = [], [], []
    for s, parts in per_spk.items():
        f = np.concatenate(parts)
        if f.size > 10:
            spk_sd.append(float(np.std(semitones(f))))
            if s in vtl:
                med.append(float(np.median(f)))
                lengths.append(vtl[s])
    corr = float(np.corrcoef(med, lengths)[0, 1]) if len(med) > 2 else float("nan")
    return {"recording_sd_semitones": float(np.mean(per_rec)) if per_rec else float("nan"),
            "speaker_sd_semitones": float(np.mean(spk_sd)) if spk_sd else float("nan"),
            "recordings": len(per_rec), "speakers": len(spk_sd), "f0_vtl_corr": corr}


# --------------------------------------------------------------------------------------------- larynx in the MRI


def vertical_shift(frames: np.ndarray, rows: slice, cols: slice, max_px: float = 6.0, step_px: float = 0.05,
                   blur_px: float = 1.5) -> np.ndarray:
    """How far (pixels, down positive) the content of the window ``[rows, cols]`` of each frame lies from its
    place in frame 0, by the best normalised correlation over sub-pixel vertical shifts.

    The frames are blurred first (``blur_px``) so that a tag grid (about 4.5 px apart) does not pull the match
    one tag period off. The window must leave ``max_px`` of room above and below inside the image.
    """
    from scipy.ndimage import gaussian_filter, shift

    x = np.stack([gaussian_filter(np.asarray(f, np.float64), blur_px) for f in frames])
    if rows.start - max_px < 0 or rows.stop + max_px > x.shape[1]:
        raise ValueError(f"window rows {rows.start}-{rows.stop} leave no room for +-{max_px} px in {x.shape[1]} rows")
    pad = int(np.ceil(max_px)) + 3
    lo, hi = max(rows.start - pad, 0), min(rows.stop + pad, x.shape[1])
    inner = slice(rows.start - lo, rows.stop - lo)

    def norm(a: np.ndarray) -> np.ndarray:
        a = a - a.mean()
        return a / max(float(np.linalg.norm(a)), 1e-12)

    def score(strip: np.ndarray, d: float) -> float:
        return float(np.sum(ref * norm(shift(strip, (-d, 0), order=3, mode="nearest")[inner])))

    ref = norm(x[0, rows, cols])
    out = np.empty(len(x))
    for k, f in enumerate(x):
        strip = f[lo:hi, cols]
        coarse = np.arange(-np.floor(max_px), np.floor(max_px) + 1)  # whole pixels, then refined around the best
        best = coarse[int(np.argmax([score(strip, d) for d in coarse]))]
        fine = np.clip(np.arange(best - 1.0, best + 1.0 + step_px / 2, step_px), -max_px, max_px)
        out[k] = fine[int(np.argmax([score(strip, d) for d in fine]))]
    return out


def recording_larynx_f0(recording, gate_db: float = -12.0) -> dict[str, np.ndarray | float]:
    """Larynx height read off a mri2audio phantom recording's MRI frames, against its F0 measured from its WAV.

    The height is the vertical shift (mm, up positive, from frame 0) of a window over the larynx and the lower
    hyoid (placed from the subject's rest anatomy, as one would draw it by hand); F0 is pYIN's
    (:func:`f0_track`, frames more than ``-gate_db`` dB below the loud speech dropped) at the frame times. Returns ``height_mm`` and ``octaves`` (log2 F0, NaN where unvoiced)
    per frame, and the least-squares ``mm_per_octave`` and ``corr`` over the voiced frames.
    """
    from articulate.phantom import head
    from articulate.phantom.cohort import load_subject
    from articulate.phantom.groundtruth import _traj_path
    from articulate.readers.audio import read_audio
    from articulate.readers.mri import read_mri

    path = _traj_path(recording)
    stem = path.name[: -len(".traj.npz")]
    mri = read_mri(path.with_name(stem + ".nii.gz"))
    wav, sr = read_audio(path.with_name(stem + ".wav"))
    frames = mri.frames
    n, size = frames.shape[0], frames.shape[1]
    pixel_mm = float(mri.pixel_mm[0]) if mri.pixel_mm else 1.87
    subject = load_subject(path)
    corners = head.reference_to_image(np.array([[98.0, 176.0], [128.0, 176.0], [98.0, 232.0], [128.0, 232.0]]),
                                      subject) / pixel_mm - 0.5
    r0, r1 = int(np.ceil(corners[:, 1].min())), int(np.floor(corners[:, 1].max()))
    c0, c1 = int(np.ceil(corners[:, 0].min())), int(np.floor(corners[:, 0].max()))
    r1 = min(r1, size - 7)
    height = -vertical_shift(frames, slice(r0, r1), slice(c0, c1)) * pixel_mm
    frame_s = float(mri.frame_s) if mri.frame_s else len(wav) / sr / n
    times = (np.arange(n) + 0.5) * frame_s
    # voiced speech only: the aspiration after a stop is ~18 dB below the vowels, and its noise ringing in a
    # narrow first formant can pass for voicing
    f0 = f0_track(wav, sr, gate_db=gate_db)
    near = np.clip(np.rint(times / 0.01).astype(int), 0, len(f0) - 1)  # pYIN frame k is centred at 10 k ms
    octaves = np.log2(f0[near])
    ok = np.isfinite(octaves)
    slope, corr = float("nan"), float("nan")
    if ok.sum() > 2:
        slope = float(np.polyfit(octaves[ok], height[ok], 1)[0])
        corr = float(np.corrcoef(octaves[ok], height[ok])[0, 1])
    return {"height_mm": height, "octaves": octaves, "mm_per_octave": slope, "corr": corr}
