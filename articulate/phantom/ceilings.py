"""What an mri2audio model can score at best on the phantom, by what it can know of the intonation.

The phantom's F0 contour (:mod:`articulate.phantom.prosody`) is the word's stereotyped contour in the speaker's key
and range, varied a little per repetition, plus microprosody and a fast wander; the larynx's height in the MRI shows
the phrase contour. The voice source's noise (jitter, shimmer, breath, aspiration, frication, bursts, room noise)
is shown by nothing. :func:`intonation_ceilings` rebuilds recordings of a phantom cohort exactly as
:mod:`articulate.phantom.cohort` does (subject, trajectory, and the true audio, identical to the cohort's WAV as
read back), re-renders the same trajectory with F0 contours that a model knowing more or less could predict, with
fresh source noise, and scores the results as the mri2audio module scores a prediction. Versions (keys of
``result["versions"]``):

- ``oracle``: Griffin-Lim of the true mel (``test/pesq_oracle``; Corr2D 1 by definition): the vocoder's ceiling.
- ``noise``: the true F0, fresh source noise: what the noise alone costs.
- ``larynx``: F0 read back from the larynx height at the MRI frames with the phantom's own mapping
  (:func:`~articulate.phantom.prosody.phrase_from_larynx`), the microprosody the segments imply, and the
  unexplained wander redrawn, fresh source noise; each of the K draws scored (n = crops x K).
- ``larynx_mean``: the mean of those K unit-scale mels: the best of a model that sees the larynx.
- ``word``: the word's own contour in another speaker's key and range, another repetition's variation and
  wander: what a model can know that has learnt the word's contour but does not see the larynx (each of K).
- ``word_mean``: the mean of those K mels: that model's best.
- ``redraw``: another intonation draw (another word contour, speaker and repetition) and fresh source noise,
  each of the K draws scored.
- ``mean``: the mean of those K unit-scale mels, the prediction minimising the expected L2 error of a model
  blind to intonation and source noise (as K grows): the intonation-blind ceiling.
- ``flat``: F0 flat at the subject's mean ``f0_hz``, fresh source noise.

Scores use the project's own functions, as the mri2audio module does: the mel of a crop is the DataModule's
(``MelSpectrogram`` + ``power_to_unit``, :class:`~articulate.signal.mel.MelConfig` defaults), Corr2D is
:func:`~articulate.metrics.functional.corr2d` (``undefined=0``, as the metric), waveforms come from
:func:`~articulate.signal.griffin_lim.unit_mel_to_audio` (librosa, 32 iterations: ``configs/mri2audio.yaml``) and
PESQ-wb is :func:`~articulate.metrics.pesq.pesq_batch` against the true audio crop (``batch["audio"]``, as for
``pesq_oracle``), not against Griffin-Lim of the true mel. Crops are the evaluation crops (evenly spaced, as
``EvalCrops``). Every rendering goes through the 16-bit WAV the cohort writes and is read back as the DataModule
reads it. sd is over crops; the crops come from few recordings, so the between-recording spread is larger than
sd / sqrt(n) suggests.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from articulate.errors import InputError
from articulate.phantom.anatomy import Subject
from articulate.phantom.cohort import (
    MRI_FILL,
    MRI_LEAD_S,
    _mri_subject_words,
    _options,
    mri_prosody,
    mri_subject,
    mri_take,
)
from articulate.phantom.mri import frame_times
from articulate.phantom.prosody import (
    draw_speaker_prosody,
    draw_word_contour,
    f0_from_phrase,
    phrase_contour,
    phrase_from_larynx,
    stressed_count,
    take_contour,
)
from articulate.phantom.trajectories import make_trajectory, plan_segments
from articulate.signal.crops import crop_starts

VERSIONS = ("oracle", "noise", "larynx", "larynx_mean", "word", "word_mean", "redraw", "mean", "flat")
LABELS = {
    "oracle": "oracle: GL(true mel)",
    "noise": "true F0, fresh source noise",
    "larynx": "F0 read from the larynx in the MRI, wander + source noise redrawn (each of K)",
    "larynx_mean": "mean of the K larynx mels (larynx-seeing best)",
    "word": "the word's contour, another speaker and repetition + fresh source noise (each of K)",
    "word_mean": "mean of the K word mels (word-knowing, larynx-blind best)",
    "redraw": "another intonation draw + fresh source noise (each of K)",
    "mean": "mean of the K redraw mels (intonation- and noise-blind best)",
    "flat": "flat F0 at the subject mean + fresh source noise",
}
DRAWN = {"larynx": "larynx_mean", "word": "word_mean", "redraw": "mean"}  # K draws each, and their mean mel
CROP_SAMPLES = 21000  # configs/mri2audio.yaml data.crop_samples (the paper's)
GRIFFIN_LIM, GRIFFIN_LIM_ITERS, PESQ_MODE = "librosa", 32, "wb"  # configs/mri2audio.yaml model settings
_TAG = 7331  # keys the ceiling's own generators apart from the cohort's ([seed, 0..5, ...])
_NOISE, _F0, _WORD, _LARYNX = 1, 2, 3, 4  # what a generator draws: synthesis noise, a contour of each kind
_VERSION_ID = {"noise": 0, "redraw": 1, "flat": 2, "word": 3, "larynx": 4}


def recording_subjects(subjects: int, recordings: int) -> list[int]:
    """Indices of ``recordings`` subjects spread evenly over a cohort of ``subjects`` (first and last included),
    so that every main word is represented in its share."""
    if recordings == 1:
        return [0]
    return [int(np.floor(v + 0.5)) for v in np.linspace(0, subjects - 1, recordings)]


CEILING_BOUNDS = {"subjects": 10000, "recordings": 10000, "crops": 1000, "draws": 1000}  # each at least 1


def check_ceiling_options(subjects: int, recordings: int, crops: int, draws: int) -> None:
    from articulate import validate

    for name, value in (("subjects", subjects), ("recordings", recordings), ("crops", crops), ("draws", draws)):
        if isinstance(value, (float, str)):  # a whole number is asked for, not one rounded from 2.5
            raise InputError(None, f"ceiling option {name} must be a whole number, got {value!r}")
        validate.number(value, f"ceiling option {name}", integer=True, low=1, high=CEILING_BOUNDS[name])
    if recordings > subjects:
        raise InputError(None, f"ceiling option recordings ({recordings}) exceeds the cohort's {subjects} subjects "
                               "(one recording each)")


class PhantomRecording:
    """One cohort recording rebuilt as ``cohort._mri_subject`` builds it (main word, first repetition)."""

    def __init__(self, seed: int, si: int, word: str, opts: dict[str, Any]):
        self.seed, self.si, self.word, self.sr = seed, si, word, int(opts["sr"])
        self.subject: Subject = mri_subject(seed, si)
        self.prosody = mri_prosody(seed, si, word)
        rng, self.n = mri_take(seed, si, 0, 0, opts)
        duration = self.n / self.sr
        # make_trajectory plans the segments first from the same generator: replayed on a copy, for the stress marks
        self.segments = plan_segments(word, self.subject, copy.deepcopy(rng), duration, MRI_LEAD_S, MRI_FILL)
        self.traj = make_trajectory(word, self.subject, rng, duration_s=duration, lead_s=MRI_LEAD_S, fill=MRI_FILL,
                                    prosody=self.prosody)
        assert [s[:3] for s in self.segments] == self.traj.segments  # the replay is the plan make_trajectory used
        self._state = copy.deepcopy(rng.bit_generator.state)  # where the cohort's synthesis starts
        self.frame_times = frame_times(duration, int(opts["n_frames"]))  # when the MRI shows the larynx

    @property
    def id(self) -> str:
        return f"{self.subject.id}/{self.word.replace(' ', '_')}"

    def generator(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([int(self.seed), _TAG, self.si, *keys])

    def _f0(self, phrase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return f0_from_phrase(phrase, self.segments, self.traj.t, self.subject.f0_hz, rng)

    def intonation(self, k: int) -> np.ndarray:
        """Intonation draw ``k``: another contour the same utterance could have had (another word's contour,
        speaker and repetition)."""
        rng = self.generator(_F0, k)
        word = draw_word_contour(rng, stressed_count(self.word))
        contour = take_contour(word, draw_speaker_prosody(rng), rng)
        return self._f0(phrase_contour(self.segments, self.traj.t, contour), rng)

    def word_intonation(self, k: int) -> np.ndarray:
        """Draw ``k`` of the word's own contour as another speaker would say it in another repetition."""
        rng = self.generator(_WORD, k)
        contour = take_contour(self.prosody[0], draw_speaker_prosody(rng), rng)
        return self._f0(phrase_contour(self.segments, self.traj.t, contour), rng)

    def larynx_intonation(self, k: int) -> np.ndarray:
        """Draw ``k`` of the F0 a model that sees the larynx can know: the phrase contour read back from the
        larynx height at the MRI frames, the segments' microprosody, a fresh wander."""
        height = np.interp(self.frame_times, self.traj.t, self.traj.larynx_mm)
        phrase = phrase_from_larynx(self.frame_times, height, self.segments, self.traj.t, self.prosody[1])
        return self._f0(phrase, self.generator(_LARYNX, k))

    def render(self, f0: np.ndarray | None = None, noise: tuple[int, int] | None = None) -> np.ndarray:
        """The waveform with F0 ``f0`` (None: the true one); ``noise`` None continues the cohort's generator
        (with the true F0: the cohort's recording), else keys a fresh generator for all of the source noise."""
        from articulate.phantom.speech import synthesize

        traj = self.traj if f0 is None else dataclasses.replace(self.traj, f0=f0, extra={})
        if noise is None:
            rng = np.random.default_rng()
            rng.bit_generator.state = copy.deepcopy(self._state)
        else:
            rng = self.generator(_NOISE, *noise)
        return synthesize(traj, self.subject, self.sr, self.n, rng)


def stored(wav: np.ndarray, sr: int) -> np.ndarray:
    """``wav`` as the DataModule reads it from the cohort: written as 16-bit WAV, read back as float32."""
    from articulate.readers.audio import read_audio, write_audio

    with tempfile.TemporaryDirectory(prefix="articulate-ceiling-") as tmp:
        path = write_audio(Path(tmp) / "x.wav", wav, sr)
        return read_audio(path)[0]


def _crops(wav: np.ndarray, starts: list[int], sr: int):
    """The evaluation crops ``[C, CROP_SAMPLES]`` (torch) of ``wav`` as stored in the cohort."""
    import torch

    w = stored(wav, sr)
    return torch.from_numpy(np.stack([w[s:s + CROP_SAMPLES] for s in starts]))


def _summary(values: list[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    return {"mean": float(ok.mean()) if len(ok) else None, "sd": float(ok.std(ddof=1)) if len(ok) > 1 else None,
            "n": int(len(ok)), "failed": int(len(v) - len(ok))}


def intonation_ceilings(subjects: int = 40, recordings: int = 12, crops: int = 4, draws: int = 8, seed: int = 0,
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Corr2D and PESQ-wb of the versions in the module docstring on ``recordings`` recordings of the mri2audio
    phantom cohort of ``subjects`` subjects and seed ``seed`` (default: the QUICK reproduction's 40), ``crops``
    evaluation crops each, ``draws`` intonation draws (K) per recording; ``log`` gets one line per recording.

    Returns ``{"versions": {name: {"label", "corr2d": {mean, sd, n, failed}, "pesq": {mean, sd, n, failed}}},
    "scores": {name: {"corr2d": [...], "pesq": [...]}}`` (per crop, crop-major within a recording, draws
    innermost for the drawn versions; a failed PESQ is None), ``"f0_rms_semitones": {"larynx", "word", "redraw",
    "flat"}`` (RMS distance to the true contour over the recording's voiced part, mean over recordings),
    ``"recordings"`` (ids),
    ``"settings"`` and ``"seconds"``. Deterministic for given arguments.
    """
    import torch

    from articulate.metrics.functional import corr2d
    from articulate.metrics.pesq import pesq_batch
    from articulate.signal.griffin_lim import unit_mel_to_audio
    from articulate.signal.mel import MelConfig, MelSpectrogram, power_to_unit

    check_ceiling_options(subjects, recordings, crops, draws)
    started = time.perf_counter()
    opts = _options("mri2audio", int(subjects), {})
    words = _mri_subject_words(opts)
    cfg = MelConfig()
    mel_fn = MelSpectrogram(cfg)
    sr = int(opts["sr"])

    def mels(audio: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return power_to_unit(mel_fn(audio), cfg)[:, None].float()  # [C, 1, n_mels, frames]

    scores: dict[str, dict[str, list[float]]] = {v: {"corr2d": [], "pesq": []} for v in VERSIONS}
    rms: dict[str, list[float]] = {"larynx": [], "word": [], "redraw": [], "flat": []}
    ids = []
    for si in recording_subjects(int(subjects), int(recordings)):
        rec = PhantomRecording(int(seed), si, words[si], opts)
        ids.append(rec.id)
        starts = crop_starts(rec.n, CROP_SAMPLES, int(crops))
        audio = _crops(rec.render(), starts, sr)  # the cohort's recording
        true_mel = mels(audio)
        f0_draws = {"larynx": [rec.larynx_intonation(k) for k in range(int(draws))],
                    "word": [rec.word_intonation(k) for k in range(int(draws))],
                    "redraw": [rec.intonation(k) for k in range(int(draws))]}
        flat_f0 = np.full_like(rec.traj.f0, rec.subject.f0_hz)
        pred = {"oracle": [true_mel], "noise": [mels(_crops(rec.render(None, (_VERSION_ID["noise"], 0)), starts, sr))]}
        for name, f0s in f0_draws.items():
            pred[name] = [mels(_crops(rec.render(f, (_VERSION_ID[name], k)), starts, sr)) for k, f in enumerate(f0s)]
            pred[DRAWN[name]] = [torch.stack(pred[name]).mean(0)]
        pred["flat"] = [mels(_crops(rec.render(flat_f0, (_VERSION_ID["flat"], 0)), starts, sr))]
        for name, ms in pred.items():
            c = torch.stack([corr2d(m, true_mel, undefined=0.0) for m in ms], dim=1)  # [C, draws]
            p = [pesq_batch(audio, unit_mel_to_audio(m, cfg, GRIFFIN_LIM, GRIFFIN_LIM_ITERS, length=CROP_SAMPLES),
                            sr, PESQ_MODE, num_workers=1)[0] for m in ms]
            scores[name]["corr2d"] += c.reshape(-1).tolist()
            scores[name]["pesq"] += np.asarray(p, dtype=np.float64).T.reshape(-1).tolist()
        voiced = rec.traj.src["voicing"] > 0.5  # where F0 is heard
        true_st = 12.0 * np.log2(rec.traj.f0[voiced] / rec.subject.f0_hz)  # semitones from the subject's mean F0
        for name, f0s in f0_draws.items():
            rms[name].append(float(np.mean([np.sqrt(np.mean((12.0 * np.log2(f[voiced] / rec.subject.f0_hz)
                                                             - true_st) ** 2)) for f in f0s])))
        rms["flat"].append(float(np.sqrt(np.mean(true_st ** 2))))
        if log is not None:
            done = {v: (np.mean(s["corr2d"]), np.nanmean(s["pesq"])) for v, s in scores.items()}
            log(f"{rec.id} ({len(ids)}/{recordings}, {time.perf_counter() - started:.0f} s), running Corr2D/PESQ: "
                + " ".join(f"{v} {c:.3f}/{p:.2f}" for v, (c, p) in done.items()))
    return {
        "versions": {v: {"label": LABELS[v], "corr2d": _summary(scores[v]["corr2d"]), "pesq": _summary(scores[v]["pesq"])}
                     for v in VERSIONS},
        "scores": {v: {k: [x if np.isfinite(x) else None for x in vals] for k, vals in s.items()}
                   for v, s in scores.items()},
        "f0_rms_semitones": {k: float(np.mean(v)) for k, v in rms.items()},
        "recordings": ids,
        "settings": {"subjects": int(subjects), "recordings": int(recordings), "crops": int(crops),
                     "draws": int(draws), "seed": int(seed), "crop_samples": CROP_SAMPLES, "sample_rate": sr,
                     "griffin_lim": GRIFFIN_LIM, "griffin_lim_iters": GRIFFIN_LIM_ITERS, "pesq_mode": PESQ_MODE},
        "seconds": round(time.perf_counter() - started, 1),
    }


def ceiling_table(result: dict[str, Any]) -> str:
    """The result of :func:`intonation_ceilings` as a markdown table (one row per version)."""
    def cell(s: dict[str, Any]) -> str:
        if s["mean"] is None:
            return "n/a"
        return f"{s['mean']:.3f}" + (f" ± {s['sd']:.3f}" if s["sd"] is not None else "")

    k = result["settings"]["draws"]
    lines = ["| version | Corr2D mean ± sd | PESQ-wb mean ± sd | n crops |", "|---|---|---|---|"]
    for row in result["versions"].values():
        failed = f" ({row['pesq']['failed']} PESQ failed)" if row["pesq"]["failed"] else ""
        lines.append(f"| {row['label'].replace('K', f'K={k}')} | {cell(row['corr2d'])} | {cell(row['pesq'])} | "
                     f"{row['corr2d']['n']}{failed} |")
    return "\n".join(lines)
