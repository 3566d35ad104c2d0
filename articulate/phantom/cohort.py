"""Write phantom cohorts in the real file formats, and cache them (``ensure_phantom``).

Every recording draws from its own generator seeded by (seed, subject, utterance, repetition),
so a recording's bytes do not depend on the number of workers or on the other recordings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from articulate.errors import InputError
from articulate.phantom.anatomy import Subject, sample_subject
from articulate.phantom.phonetics import LEXICON, SENTENCE_PROMPTS, VOWEL_PROMPTS, WORD_PROMPTS, prompt_text
from articulate.phantom.prosody import (
    SpeakerProsody,
    WordContour,
    draw_speaker_prosody,
    draw_word_contour,
    stressed_count,
    word_generator,
)
from articulate.phantom.trajectories import make_trajectory

KINDS = ("mri2audio", "wav2uti")
# bump a kind's version when its output changes: cached cohorts are keyed by it (mri2audio 5: stereotyped
# intonation of the paced word list, shown by the larynx's height in the MRI; wav2uti's files did not change)
VERSIONS = {"mri2audio": "5", "wav2uti": "4"}
# mri2audio timing: silence before the word (s) and the share of the recording the word fills (paced speech)
MRI_LEAD_S, MRI_FILL = (0.03, 0.22), (0.5, 0.82)

MRI2AUDIO_DEFAULTS: dict[str, Any] = {
    "subjects": 63, "words": ["asouk", "ageese"], "word_shares": [43, 20], "extra_words": [], "repetitions": 1,
    "sr": 22050, "n_frames": 26, "size": 128, "min_samples": 21832, "max_samples": 24175,
}
WAV2UTI_DEFAULTS: dict[str, Any] = {
    "subjects": 44, "vowels": 2, "words": 3, "sentences": 1, "repetitions": 1, "sr": 16000, "fps": 60.0,
    "num_vectors": 64, "pix_per_vector": 256,
}


# Every numeric option: (whole number, lowest, highest, lowest excluded). The CLI declares the same bounds
# (articulate.cli.phantom reads them here); the prompt counts cannot exceed the prompts there are.
OPTION_BOUNDS: dict[str, dict[str, tuple]] = {
    "common": {"subjects": (True, 1, 10000, False), "repetitions": (True, 1, 100, False),
               "sr": (True, 8000, 192000, False)},
    "mri2audio": {"n_frames": (True, 2, 1000, False), "size": (True, 16, 1024, False),
                  "min_samples": (True, 1, 10**8, False), "max_samples": (True, 1, 10**8, False),
                  "word_shares": (True, 0, 10000, False)},
    "wav2uti": {"vowels": (True, 0, len(VOWEL_PROMPTS), False), "words": (True, 0, len(WORD_PROMPTS), False),
                "sentences": (True, 0, len(SENTENCE_PROMPTS), False), "fps": (False, 0, 1000, True),
                "num_vectors": (True, 2, 1024, False), "pix_per_vector": (True, 2, 4096, False)},
}


def option_bounds(kind: str, name: str) -> dict[str, Any]:
    """Keyword arguments of :func:`articulate.validate.number` for phantom option ``name`` of ``kind``."""
    integer, low, high, low_open = {**OPTION_BOUNDS["common"], **OPTION_BOUNDS[kind]}[name]
    return {"integer": integer, "low": low, "high": high, "low_open": low_open}


def _options(kind: str, subjects: int | None, options: dict[str, Any]) -> dict[str, Any]:
    from articulate import validate

    if kind not in KINDS:
        raise InputError(None, f"unknown phantom kind {kind!r}; choose one of {', '.join(KINDS)}")
    defaults = MRI2AUDIO_DEFAULTS if kind == "mri2audio" else WAV2UTI_DEFAULTS
    unknown = set(options) - set(defaults)
    if unknown:
        raise InputError(None, f"unknown {kind} phantom option(s): {', '.join(sorted(unknown))}")
    opts = {**defaults, **options}
    if subjects is not None:
        opts["subjects"] = subjects
    # Sizes and rates: refused here rather than as a numpy error halfway through writing the cohort.
    bounds = {**OPTION_BOUNDS["common"], **OPTION_BOUNDS[kind]}
    for name in bounds:
        if name not in opts or (name == "words" and kind == "mri2audio"):
            continue
        value = opts[name]
        if isinstance(value, (list, tuple)):
            opts[name] = validate.numbers(value, f"phantom option {name}", **option_bounds(kind, name))
        else:
            opts[name] = validate.number(value, f"phantom option {name}", **option_bounds(kind, name))
    if kind == "mri2audio":
        if opts["max_samples"] < opts["min_samples"]:
            raise InputError(None, f"phantom option max_samples ({opts['max_samples']}) is below min_samples ({opts['min_samples']})")
        if not opts["words"]:
            raise InputError(None, "phantom option words is empty: no word to record")
        if sum(opts["word_shares"][: len(opts["words"])]) + max(0, len(opts["words"]) - len(opts["word_shares"])) < 1:
            raise InputError(None, "phantom option word_shares are all 0: no subject would say a word")
    if kind == "wav2uti" and opts["vowels"] + opts["words"] + opts["sentences"] < 1:
        raise InputError(None, "phantom options vowels, words and sentences are all 0: no prompt to record")
    for w in list(opts.get("extra_words", [])) + (list(opts["words"]) if kind == "mri2audio" else []):
        if any(part not in LEXICON for part in str(w).split()):
            raise InputError(None, f"word {w!r} is not in the phantom lexicon ({', '.join(sorted(LEXICON))})")
    return opts


def check_options(kind: str, options: dict[str, Any]) -> None:
    """Raise the InputError that generation would, without generating (DataModules check their config early)."""
    call_args = {"subjects", "seed", "quiet", "workers"}  # ensure_phantom's own arguments
    _options(kind, options.get("subjects"), {k: v for k, v in options.items() if k not in call_args})


def _subject_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])


def _mri_subject_words(opts: dict[str, Any]) -> list[str]:
    """The main word of each subject: the shares split the cohort (43:20 -> 'asouk':'ageese')."""
    n, words, shares = opts["subjects"], list(opts["words"]), list(opts["word_shares"])[: len(opts["words"])]
    shares += [1] * (len(words) - len(shares))
    counts = np.floor(np.array(shares, float) / sum(shares) * n).astype(int)
    counts[0] += n - counts.sum()
    return [w for w, c in zip(words, counts) for _ in range(c)]


# --------------------------------------------------------------------------------------------- workers


def mri_subject(seed: int, si: int) -> Subject:
    """Subject ``si`` of the mri2audio cohort of seed ``seed``."""
    return sample_subject(_subject_rng(seed, 0, si), f"S{si + 1:03d}")


def mri_prosody(seed: int, si: int, word: str) -> tuple[WordContour, SpeakerProsody]:
    """How subject ``si`` says ``word`` in the paced word list of seed ``seed``: the word's contour (one per
    word, shared by every speaker and repetition) and the speaker's key, range and larynx gain."""
    return (draw_word_contour(word_generator(seed, word), stressed_count(word)),
            draw_speaker_prosody(_subject_rng(seed, 4, si)))


def mri_take(seed: int, si: int, wi: int, rep: int, opts: dict[str, Any]) -> tuple[np.random.Generator, int]:
    """The generator of subject ``si``'s repetition ``rep`` of word ``wi`` and its length in samples, drawn first;
    the trajectory, the audio and the MRI then continue that generator in this order."""
    rng = _subject_rng(seed, 1, si, wi, rep)
    return rng, int(rng.integers(opts["min_samples"], opts["max_samples"] + 1))


def _mri_subject(args: tuple) -> list[dict]:
    from articulate.phantom.mri import render_mri
    from articulate.phantom.speech import synthesize
    from articulate.readers.audio import write_audio
    from articulate.readers.mri import write_mri

    root, seed, si, word, opts = args
    subject = mri_subject(seed, si)
    out = []
    for wi, w in enumerate([word] + list(opts["extra_words"])):
        for rep in range(opts["repetitions"]):
            rng, n = mri_take(seed, si, wi, rep, opts)
            prosody = mri_prosody(seed, si, w)
            traj = make_trajectory(w, subject, rng, duration_s=n / opts["sr"], lead_s=MRI_LEAD_S, fill=MRI_FILL,
                                   prosody=prosody)
            wav = synthesize(traj, subject, opts["sr"], n, rng)
            frames, region, speed = render_mri(traj, subject, rng, n_frames=opts["n_frames"], size=opts["size"],
                                               truth=True)
            utt = w.replace(" ", "_") + (f"_{rep + 1:02d}" if opts["repetitions"] > 1 else "")
            base = Path(root) / subject.id / utt
            write_mri(base.with_name(utt + ".nii.gz"), frames, frame_s=traj.duration / opts["n_frames"])
            write_audio(base.with_name(utt + ".wav"), wav, opts["sr"])
            traj.extra.update(subject=np.array(json.dumps(subject.as_dict())), kind=np.array("mri2audio"),
                              frame_times=(np.arange(opts["n_frames"]) + 0.5) * traj.duration / opts["n_frames"],
                              motion_region=region, motion_speed=speed.astype(np.float16),
                              speaker_prosody=np.array(json.dumps(dataclasses.asdict(prosody[1]))))
            _save_traj(traj, base.with_name(utt + ".traj.npz"))
            out.append({"id": f"{subject.id}/{utt}", "subject": subject.id, "utterance": w, "utt": utt,
                        "rep": rep + 1, "sex": subject.sex})
    return out


def _save_traj(traj, path: Path) -> None:
    from articulate.utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            traj.save(fh)


def _uti_prompts(rng: np.random.Generator, opts: dict[str, Any]) -> list[tuple[str, str]]:
    picks = [("vowel", p) for p in rng.choice(VOWEL_PROMPTS, opts["vowels"], replace=False)]
    picks += [("word", p) for p in rng.choice(WORD_PROMPTS, opts["words"], replace=False)]
    picks += [("sentence", p) for p in rng.choice(SENTENCE_PROMPTS, opts["sentences"], replace=False)]
    return [(task, str(p)) for task, p in picks for _ in range(opts["repetitions"])]


def _uti_subject(args: tuple) -> list[dict]:
    from articulate.phantom.groundtruth import surface_polar
    from articulate.phantom.speech import synthesize
    from articulate.phantom.ultrasound import ANGLE, PIXELS_PER_MM, ZERO_OFFSET, render_ultrasound
    from articulate.readers.ultrasound import UltrasoundParams, write_utterance

    root, seed, si, _, opts = args
    subject = sample_subject(_subject_rng(seed, 0, si), f"spk{si + 1:02d}")
    prompts = _uti_prompts(_subject_rng(seed, 2, si), opts)
    out = []
    for k, (task, words) in enumerate(prompts):
        rng = _subject_rng(seed, 3, si, k)
        traj = make_trajectory(words, subject, rng, lead_s=(0.35, 0.6))
        n = int(round(traj.duration * opts["sr"]))
        wav = synthesize(traj, subject, opts["sr"], n, rng)
        t_first = float(rng.uniform(0.1, 0.3))
        # other line lengths keep the same depth (10-95 mm): the sampling density changes
        density = opts["pix_per_vector"] / 256.0
        geometry = {"num_vectors": opts["num_vectors"], "pix_per_vector": opts["pix_per_vector"],
                    "zero_offset": round(ZERO_OFFSET * density), "pixels_per_mm": PIXELS_PER_MM * density}
        scan, times = render_ultrasound(traj, subject, rng, t_first, fps=opts["fps"], **geometry)
        params = UltrasoundParams(num_vectors=opts["num_vectors"], pix_per_vector=opts["pix_per_vector"],
                                  zero_offset=geometry["zero_offset"], bits_per_pixel=8, angle=ANGLE, kind=0,
                                  pixels_per_mm=geometry["pixels_per_mm"], fps=float(opts["fps"]),
                                  time_first_frame=round(t_first, 5))
        stem_name = f"{k + 1:03d}{task[0].upper()}"
        stem = Path(root) / subject.id / stem_name
        stem.parent.mkdir(parents=True, exist_ok=True)
        text = prompt_text(words)
        write_utterance(stem, scan, params, wav, opts["sr"], text, speaker=subject.id, date="phantom")
        surface = surface_polar(traj.at(times), subject, opts["num_vectors"], opts["pix_per_vector"], ANGLE,
                                geometry["zero_offset"], geometry["pixels_per_mm"])
        traj.extra.update(subject=np.array(json.dumps(subject.as_dict())), kind=np.array("wav2uti"),
                          frame_times=times, task=np.array(task), surface_polar=surface,
                          keypoints_polar=surface[:, ::10])
        _save_traj(traj, stem.with_name(stem_name + ".traj.npz"))
        out.append({"id": f"{subject.id}/{stem_name}", "subject": subject.id, "utterance": text, "utt": stem_name,
                    "rep": 1, "sex": subject.sex, "task": task})
    return out


# --------------------------------------------------------------------------------------------- public API


def _map(fn, jobs: list, workers: int, quiet: bool, desc: str) -> Iterator[list[dict]]:
    from articulate.utils.progress import Progress

    # a bar on a terminal, plain periodic lines (done, elapsed, left) in a log file
    with Progress(desc, total=len(jobs), unit="subject", quiet=quiet) as bar:
        if workers <= 1 or len(jobs) == 1:
            for job in jobs:
                yield fn(job)
                bar.update()
        else:
            # fork is cheap, but not safe once torch's thread pools exist in this process
            ctx = multiprocessing.get_context("spawn" if "torch" in sys.modules else "fork")
            with ctx.Pool(workers) as pool:
                for res in pool.imap(fn, jobs):
                    yield res
                    bar.update()


def is_cohort(folder: str | Path) -> bool:
    """Whether ``folder`` holds a complete phantom cohort (its manifest and phantom.json)."""
    folder = Path(folder)
    return (folder / "manifest.csv").is_file() and (folder / "phantom.json").is_file()


def generate(kind: str, out_dir: str | Path, subjects: int | None = None, seed: int = 0, quiet: bool = False,
             workers: int | None = None, **options: Any) -> Path:
    """Write a phantom cohort to ``out_dir`` and return it.

    ``kind`` "mri2audio": ``<subject>/<word>.nii.gz`` + ``.wav`` (options: words, word_shares,
    extra_words, repetitions, sr, n_frames, size, min_samples, max_samples). "wav2uti": UltraSuite
    stems ``<speaker>/<id>.{ult,param,wav,txt}`` (options: vowels, words, sentences, repetitions,
    sr, fps, num_vectors, pix_per_vector). Each recording has ``<id>.traj.npz`` (ground-truth
    trajectories, and the moving-articulator region / the tongue surface: see
    :mod:`articulate.phantom.groundtruth`); ``manifest.csv`` lists everything and is written last.
    """
    opts = _options(kind, subjects, options)
    from articulate.utils.atomic import atomic_folder

    # Built in a temporary folder beside out_dir and renamed into place when complete (manifest last), so an
    # interrupted or failed run leaves no half cohort; an earlier cohort there is replaced, anything else refused.
    with atomic_folder(out_dir, replaceable=is_cohort) as tmp:
        _generate_into(tmp, kind, opts, seed, quiet, workers)
    return Path(out_dir)


def _generate_into(root: Path, kind: str, opts: dict[str, Any], seed: int, quiet: bool, workers: int | None) -> None:
    from articulate.readers.dataset_index import Recording, write_manifest
    from articulate.utils.atomic import atomic_path

    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if kind == "mri2audio":
        jobs = [(str(root), seed, si, w, opts) for si, w in enumerate(_mri_subject_words(opts))]
        fn = _mri_subject
    else:
        jobs = [(str(root), seed, si, None, opts) for si in range(opts["subjects"])]
        fn = _uti_subject
    started = time.perf_counter()
    records = []
    for rows in _map(fn, jobs, workers, quiet, f"phantom {kind}"):
        for r in rows:
            sdir = root / r["subject"]
            extra = {"traj": f"{r['subject']}/{r['utt']}.traj.npz", "rep": str(r["rep"]), "sex": r["sex"]}
            if kind == "mri2audio":
                rec = Recording(r["id"], r["subject"], r["utterance"], "mri", sdir / f"{r['utt']}.nii.gz",
                                sdir / f"{r['utt']}.wav", extra=extra)
            else:
                extra["task"] = r["task"]
                rec = Recording(r["id"], r["subject"], r["utterance"], "ultrasound", sdir / f"{r['utt']}.ult",
                                sdir / f"{r['utt']}.wav", sdir / f"{r['utt']}.param", sdir / f"{r['utt']}.txt",
                                r["utterance"], extra=extra)
            records.append(rec)
    info = {"kind": kind, "seed": seed, "version": VERSIONS[kind], "options": opts,
            "seconds": round(time.perf_counter() - started, 2), "recordings": len(records)}
    with atomic_path(root / "phantom.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1, default=str) + "\n")
    write_manifest(records, root / "manifest.csv")  # last: a cohort without it is refused by the readers


def phantom_key(kind: str, subjects: int | None = None, seed: int = 0, **options: Any) -> str:
    opts = _options(kind, subjects, options)
    blob = json.dumps({"kind": kind, "seed": seed, "version": VERSIONS[kind], **opts}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_phantom(kind: str, subjects: int | None = None, seed: int = 0, quiet: bool = True,
                   workers: int | None = None, **options: Any) -> Path:
    """The cached cohort for these options under ``cache_dir()/phantom/<kind>-<hash>``, generated once.

    Generation happens in a temporary folder renamed into place when complete, under a file lock,
    so concurrent processes (DDP ranks) wait for one writer and never see half a cohort.
    """
    from articulate.paths import cache_dir
    from articulate.utils.atomic import ensure_dir, sweep_stale

    base = ensure_dir(cache_dir() / "phantom")
    sweep_stale(base, force=True)  # temporary cohorts of killed runs (their process is gone)
    final = base / phantom_key(kind, subjects, seed, **options)
    if (final / "manifest.csv").is_file():
        return final
    with _lock(base / f".{final.name}.lock"):
        if (final / "manifest.csv").is_file():
            return final
        if final.exists():  # an incomplete leftover (no manifest) from an older interrupted layout
            shutil.rmtree(final)
        generate(kind, final, subjects=subjects, seed=seed, quiet=quiet, workers=workers, **options)
    return final


def load_subject(traj_path: str | Path) -> Subject:
    """The :class:`Subject` stored in a recording's ``.traj.npz``."""
    with np.load(traj_path) as z:
        d = json.loads(str(z["subject"]))
    d["head_shift_mm"] = tuple(d["head_shift_mm"])
    d["tag_phase_mm"] = tuple(d["tag_phase_mm"])
    d["probe_shift_mm"] = tuple(d["probe_shift_mm"])
    return Subject(**d)
