"""Find the recordings of a dataset folder: from ``manifest.csv`` when present, else by layout.

Layouts discovered (at any depth; the subject is the file's parent folder):

- MRI: ``<subject>/<utt>.{nii.gz,nii,npy,npz}`` with ``<utt>.wav`` beside it;
- UltraSuite / TaL: ``<speaker>/<id>.ult`` + ``<id>.param`` (or ``<id>US.txt``) + ``<id>.wav`` + ``<id>.txt``;
- AAA exports: ``<speaker>/<id>.ult`` + ``<id>US.txt`` + ``<id>.wav`` (+ ``<id>.txt`` / ``<id>.TextGrid``);
- ultrasound video: ``<speaker>/<id>.{mp4,avi,mov,mkv}`` with ``<id>.wav`` beside it, or with an
  audio track in the container (``extra['audio_source']`` is ``"wav"`` or ``"container"``; the
  ``.wav`` wins); a ``<id>.param`` / ``<id>US.txt`` beside it is its ``param`` (frame rate and
  first-frame time). A TaL lip video beside a ``.ult`` is kept in ``extra['video']`` instead.

The transcript is the ``.txt`` prompt's first line, else the words of a ``.TextGrid`` beside it.

Manifest columns: ``id,subject,utterance,kind,image,audio,param,text,transcript`` (any further
columns land in ``extra``); paths are relative to the manifest's folder. ``text`` is a prompt
file whose first line becomes the transcript when the ``transcript`` column is empty (a value that
is no file and does not look like a path is taken as the transcript itself). A video row without
``audio`` uses the audio track of the video.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from articulate.errors import InputError
from articulate.readers.container import VIDEO_SUFFIXES, has_audio
from articulate.readers.mri import mri_suffix
from articulate.readers.ultrasound import read_prompt, read_transcript, utterance_files
from articulate.utils.atomic import atomic_path

__all__ = ["Recording", "index_dataset", "read_manifest", "write_manifest", "MANIFEST_COLUMNS", "KINDS"]

MANIFEST_COLUMNS = ("id", "subject", "utterance", "kind", "image", "audio", "param", "text", "transcript")
_REQUIRED_COLUMNS = ("id", "subject", "utterance", "kind", "image", "audio")
_PATH_COLUMNS = ("image", "audio", "param", "text")
# Extra columns that hold paths (relative in the file, absolute in ``Recording.extra``).
_EXTRA_PATH_COLUMNS = ("video",)
# Extra keys derived when a dataset is read, never written to a manifest.
_DERIVED_EXTRA = ("audio_source",)
KINDS = ("mri", "ultrasound")


@dataclass
class Recording:
    """One recording: an image stream (MRI sequence, .ult scan lines or a video) and its audio.

    ``utterance`` names what was said (recordings of the same utterance by different subjects
    share it); ``text`` is the prompt file, ``transcript`` its text (or a manifest's).
    """

    id: str
    subject: str
    utterance: str
    kind: str
    image: Path | None
    audio: Path | None = None
    param: Path | None = None
    text: Path | None = None
    transcript: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------- manifest


def _resolve(base: Path, value: str) -> Path | None:
    value = value.strip()
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def read_manifest(csv_path: str | Path) -> list[Recording]:
    """Read a manifest; every listed file must exist (the error names the row and the file)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "manifest not found")
    base = csv_path.parent
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(csv_path, "manifest is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            csv_path, f"manifest lacks column(s) {', '.join(missing)} (expected {','.join(MANIFEST_COLUMNS)})"
        )
    records: list[Recording] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        rid = row["id"]
        where = f"row {line} (id {rid!r})"
        if not rid:
            raise InputError(csv_path, f"row {line}: empty id")
        if rid in seen:
            raise InputError(csv_path, f"{where}: duplicate id")
        seen.add(rid)
        if not row["subject"]:
            # Splits are by subject: a recording without one would silently form a subject of its own.
            raise InputError(csv_path, f"{where}: empty subject (every recording needs its subject/speaker)")
        kind = row["kind"].lower()
        if kind not in KINDS:
            raise InputError(csv_path, f"{where}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        paths = {c: _resolve(base, row.get(c, "")) for c in _PATH_COLUMNS}
        transcript = row.get("transcript") or None
        if paths["text"] is not None and not paths["text"].is_file() and not _looks_like_path(row["text"]):
            transcript = transcript or row["text"]  # the column holds the transcript itself
            paths["text"] = None
        if paths["image"] is None:
            raise InputError(csv_path, f"{where}: no image file")
        for column, path in paths.items():
            if path is not None and not path.is_file():
                raise InputError(csv_path, f"{where}: {column} file {path} does not exist")
        if transcript is None and paths["text"] is not None:
            transcript = read_prompt(paths["text"], row["subject"])[0] or None
        if kind == "ultrasound" and paths["image"].suffix.lower() == ".ult" and paths["param"] is None:
            raise InputError(csv_path, f"{where}: a .ult image needs its param file")
        extra = {k: v for k, v in row.items() if k not in MANIFEST_COLUMNS and k not in _DERIVED_EXTRA and k and v}
        if kind == "ultrasound" and paths["image"].suffix.lower() in VIDEO_SUFFIXES:
            extra["audio_source"] = "wav" if paths["audio"] is not None else "container"
        for column in _EXTRA_PATH_COLUMNS:
            if extra.get(column):
                extra[column] = str(_resolve(base, extra[column]))
                if not Path(extra[column]).is_file():
                    raise InputError(csv_path, f"{where}: {column} file {extra[column]} does not exist")
        records.append(
            Recording(
                id=rid,
                subject=row["subject"],
                utterance=row["utterance"],
                kind=kind,
                image=paths["image"],
                audio=paths["audio"],
                param=paths["param"],
                text=paths["text"],
                transcript=transcript,
                extra=extra,
            )
        )
    if not records:
        raise InputError(csv_path, "manifest lists no recordings")
    return records


def _looks_like_path(value: str) -> bool:
    v = value.strip()
    return "/" in v or "\\" in v or bool(Path(v).suffix) and " " not in v


def _relative(path: Path | None, base: Path) -> str:
    if path is None:
        return ""
    try:
        return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(Path(path).resolve())


def write_manifest(records: list[Recording], csv_path: str | Path) -> Path:
    """Write a manifest atomically with paths relative to its folder; ``extra`` keys become columns."""
    csv_path = Path(csv_path)
    base = csv_path.parent
    base.mkdir(parents=True, exist_ok=True)
    extra_cols = sorted({k for r in records for k in r.extra} - set(MANIFEST_COLUMNS) - set(_DERIVED_EXTRA))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*MANIFEST_COLUMNS, *extra_cols])
    for r in records:
        writer.writerow(
            [
                r.id,
                r.subject,
                r.utterance,
                r.kind,
                _relative(r.image, base),
                _relative(r.audio, base),
                _relative(r.param, base),
                _relative(r.text, base),
                r.transcript or "",
                *[_relative(Path(r.extra[k]), base) if k in _EXTRA_PATH_COLUMNS and r.extra.get(k) else r.extra.get(k, "") for k in extra_cols],
            ]
        )
    with atomic_path(csv_path) as tmp:
        tmp.write_text(out.getvalue(), encoding="utf-8")
    return csv_path


# ------------------------------------------------------------------------------- discovery


def _record_id(root: Path, stem: Path) -> str:
    return stem.relative_to(root).as_posix()


def _discover(root: Path) -> list[Recording]:
    records: dict[str, Recording] = {}
    # hidden files and folders are skipped (a run's temporaries: .<name>.~tmp-...)
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    # Ultrasound stems first so that a TaL lip video beside a .ult does not become its own recording.
    for path in files:
        if path.suffix.lower() != ".ult":
            continue
        found = utterance_files(path)
        stem = found["stem"]
        text = read_transcript(found, stem.parent.name)[0]
        extra = {}
        for suffix in VIDEO_SUFFIXES:
            if stem.with_name(stem.name + suffix).is_file():
                extra["video"] = str(stem.with_name(stem.name + suffix))
        rid = _record_id(root, stem)
        records[rid] = Recording(rid, stem.parent.name, stem.name, "ultrasound", path, found["wav"], found["param"],
                                 found["txt"], text or None, extra)
    for path in files:
        suffix = mri_suffix(path)
        is_video = path.suffix.lower() in VIDEO_SUFFIXES
        if not suffix and not is_video:
            continue
        stem = path.with_name(path.name[: -len(suffix)]) if suffix else path.with_suffix("")
        rid = _record_id(root, stem)
        if rid in records:
            continue
        wav = stem.with_name(stem.name + ".wav")
        wav = wav if wav.is_file() else None
        if suffix:
            if wav is None and suffix in (".npy", ".npz"):
                continue  # bare arrays without audio are more likely features than recordings
            records[rid] = Recording(rid, stem.parent.name, stem.name, "mri", path, wav)
        elif wav is not None or has_audio(path):  # a video without any audio is not a recording we can use
            found = utterance_files(path)
            text = read_transcript(found, stem.parent.name)[0]
            source = "wav" if wav is not None else "container"
            records[rid] = Recording(rid, stem.parent.name, stem.name, "ultrasound", path, wav, found["param"],
                                     found["txt"], text or None, {"audio_source": source})
    return [records[k] for k in sorted(records)]


def _refuse_unfinished_cohort(root: Path) -> None:
    """A phantom cohort (``phantom.json``, ``<subject>/<id>.traj.npz``) is complete only with its manifest,
    written last: without it the folder is what an interrupted or failed generation left, and reading the
    recordings that happen to be there would train on a different cohort."""
    marker = root / "phantom.json" if (root / "phantom.json").is_file() else None
    if marker is None:
        marker = next((p for p in root.glob("*/*.traj.npz") if not p.parent.name.startswith(".")), None)
    if marker is not None:
        raise InputError(root, "a phantom cohort without its manifest.csv (the generation did not finish): "
                               "generate it again with `articulate phantom`")


def index_dataset(root: str | Path) -> list[Recording]:
    """Recordings under ``root`` (``root/manifest.csv`` when present, or a manifest path itself)."""
    root = Path(root)
    if not root.exists():
        raise InputError(root, "folder not found")
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return read_manifest(root)
        raise InputError(root, "expected a dataset folder or a manifest .csv")
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return read_manifest(manifest)
    _refuse_unfinished_cohort(root)
    records = _discover(root)
    if not records:
        orphans = [p for p in root.rglob("*.param") if not p.with_suffix(".ult").is_file()]
        hint = f"; {len(orphans)} .param file(s) have no .ult beside them (e.g. {orphans[0]})" if orphans else ""
        raise InputError(
            root,
            "no recordings found (looked for manifest.csv, <subject>/<utt>.nii.gz|.nii|.npy + .wav, "
            f"<speaker>/<id>.ult + .param|US.txt, <speaker>/<id>.mp4|.avi|.mov|.mkv with an audio track or a .wav){hint}",
        )
    return records
