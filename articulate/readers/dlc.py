"""DeepLabCut keypoint files: hand-labelled folders in, DLC-style prediction CSVs out.

Layout (DeepLabCut's, so existing tools read what we write): three header rows ``scorer``,
``bodyparts``, ``coords``; then one row per image or frame. Labels have ``x, y`` per point,
predictions ``x, y, likelihood``; an empty cell is a missing point. The image is named by the first
column (``labeled-data\\<folder>\\img012.png``, Windows separators as DLC writes them) or, in DLC
>= 2.2, by three index columns (``labeled-data``, ``<folder>``, ``img012.png``); a prediction file
may carry a frame index instead. Pixel coordinates follow DLC (matplotlib): the centre of the
top-left pixel is (0, 0), x to the right, y down.

A labelled-data folder (DLC's ``labeled-data/<recording>/``) holds the images and
``CollectedData_<scorer>.csv``. Some folders hold a second CSV with the same images (an older
export, e.g. ``Tal03CollectedData_AW.csv``): the canonical ``CollectedData_*.csv`` wins and the
other file's rows for the same images are dropped as duplicates (counted in
``LabelledFolder.duplicates``). ``machinelabels*.csv`` are a network's predictions, not labels,
and are ignored.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from articulate.errors import InputError
from articulate.utils.atomic import atomic_path

__all__ = [
    "DLCTable", "LabelledFolder", "read_dlc_csv", "read_labelled_folder", "read_labelled_data",
    "write_dlc_csv", "load_gray", "IMAGE_SUFFIXES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_COORDS = ("x", "y", "likelihood")


@dataclass
class DLCTable:
    """One DeepLabCut CSV: ``rows`` names (image path parts joined by '/', or frame indices as text),
    ``keypoints [N, K, 2]`` float64 (NaN = missing) and ``likelihood [N, K]`` (None for labels)."""

    path: Path | None
    scorer: str
    bodyparts: list[str]
    rows: list[str]
    keypoints: np.ndarray
    likelihood: np.ndarray | None = None

    @property
    def image_names(self) -> list[str]:
        """The file name of each row's image (``labeled-data\\f\\img.png`` -> ``img.png``)."""
        return [re.split(r"[\\/]", r)[-1] for r in self.rows]


@dataclass
class LabelledFolder:
    """A labelled recording: its images (absolute paths) and the keypoints of each."""

    folder: Path
    name: str
    bodyparts: list[str]
    images: list[Path]
    keypoints: np.ndarray  # [N, K, 2] float64, NaN where a point is not labelled
    csv_paths: list[Path] = field(default_factory=list)
    duplicates: int = 0  # rows of secondary CSVs dropped because the canonical CSV labels the same image
    conflicting_cells: int = 0  # how many of those duplicate rows' cells differed from the kept values

    def __len__(self) -> int:
        return len(self.images)


def _float(cell: str, path: Path, line: int) -> float:
    cell = cell.strip()
    if cell == "":
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise InputError(path, f"line {line}: {cell!r} is not a number") from None
    if math.isinf(value):
        raise InputError(path, f"line {line}: infinite coordinate")
    return value


def read_dlc_csv(path: str | Path) -> DLCTable:
    """Parse a DeepLabCut CSV (labels or predictions); a malformed file is an ``InputError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"not a readable text CSV ({type(err).__name__})") from None
    return _parse(list(csv.reader(io.StringIO(text))), path)


def _parse(lines: list[list[str]], path: Path) -> DLCTable:
    lines = [r for r in lines if any(c.strip() for c in r)]
    if len(lines) < 3:
        raise InputError(path, "not a DeepLabCut CSV (needs the 3 header rows scorer / bodyparts / coords)")
    heads = [r[0].strip().lower() if r else "" for r in lines[:4]]
    if heads[1] == "individuals":
        raise InputError(path, "multi-animal DeepLabCut files (an 'individuals' header row) are not supported")
    if heads[:3] != ["scorer", "bodyparts", "coords"]:
        raise InputError(path, f"not a DeepLabCut CSV: the first column of the header rows reads {heads[:3]}, "
                               "expected ['scorer', 'bodyparts', 'coords']")
    scorer_row, part_row, coord_row = lines[0], lines[1], lines[2]
    width = len(coord_row)
    if len(part_row) != width or len(scorer_row) != width:
        raise InputError(path, "header rows have different numbers of columns")
    coords = [c.strip().lower() for c in coord_row]
    # Index columns: everything before the first coordinate column (1, or 3 in DLC >= 2.2).
    first = next((i for i, c in enumerate(coords) if c in _COORDS), None)
    if first is None or first < 1:
        raise InputError(path, "no x / y columns in the coords header row")
    per = 3 if "likelihood" in coords else 2
    data_cols = coords[first:]
    if len(data_cols) % per:
        raise InputError(path, f"{len(data_cols)} coordinate columns is not a multiple of {per} ({'/'.join(_COORDS[:per])})")
    parts = [p.strip() for p in part_row[first:]]
    bodyparts = []
    for k in range(len(data_cols) // per):
        block = data_cols[k * per:(k + 1) * per]
        if block != list(_COORDS[:per]):
            raise InputError(path, f"columns {first + k * per + 1}-{first + (k + 1) * per} read {block}, "
                                   f"expected {list(_COORDS[:per])}")
        names = set(parts[k * per:(k + 1) * per])
        if len(names) != 1 or not parts[k * per]:
            raise InputError(path, f"bodyparts header row is inconsistent at column {first + k * per + 1}")
        bodyparts.append(parts[k * per])
    if len(set(bodyparts)) != len(bodyparts):
        raise InputError(path, "a bodypart appears twice in the header")
    rows, kps, lik = [], [], []
    for n, row in enumerate(lines[3:], start=4):
        if len(row) < width:
            row = row + [""] * (width - len(row))  # spreadsheet tools drop trailing empty cells
        elif len(row) > width and any(c.strip() for c in row[width:]):
            raise InputError(path, f"line {n}: {len(row)} cells, the header has {width}")
        name = "/".join(c.strip() for c in row[:first] if c.strip())
        if not name:
            raise InputError(path, f"line {n}: no image name or frame index in the first column")
        vals = np.array([_float(c, path, n) for c in row[first:width]], dtype=np.float64).reshape(-1, per)
        xy = vals[:, :2].copy()
        xy[np.isnan(xy).any(axis=1)] = np.nan  # a point with only one coordinate is missing
        rows.append(name)
        kps.append(xy)
        if per == 3:
            lik.append(vals[:, 2])
    if not rows:
        raise InputError(path, "no data rows after the 3 header rows")
    scorer = next((c.strip() for c in scorer_row[first:] if c.strip()), "")
    return DLCTable(path=path, scorer=scorer, bodyparts=bodyparts, rows=rows, keypoints=np.stack(kps),
                    likelihood=np.stack(lik) if per == 3 else None)


def _label_csvs(folder: Path) -> list[Path]:
    """Label CSVs of a folder, canonical ``CollectedData_*.csv`` first (machine labels excluded)."""
    found = [p for p in folder.glob("*.csv") if "collecteddata" in p.name.lower()
             and not p.name.lower().startswith("machinelabels")]
    return sorted(found, key=lambda p: (not p.name.startswith("CollectedData_"), p.name))


def read_labelled_folder(folder: str | Path) -> LabelledFolder:
    """One labelled recording (images + ``CollectedData_*.csv``), duplicate CSVs de-duplicated."""
    folder = Path(folder)
    csvs = _label_csvs(folder)
    if not csvs:
        raise InputError(folder, "no CollectedData_*.csv in this folder")
    tables = [read_dlc_csv(p) for p in csvs]
    bodyparts = tables[0].bodyparts
    for t in tables[1:]:
        if t.bodyparts != bodyparts:
            raise InputError(t.path, f"bodyparts {t.bodyparts} differ from {csvs[0].name}'s {bodyparts}")
    kept: dict[str, np.ndarray] = {}
    duplicates = conflicts = 0
    for t in tables:
        for name, xy in zip(t.image_names, t.keypoints):
            if name in kept:
                duplicates += 1
                both = ~(np.isnan(kept[name]) & np.isnan(xy))
                conflicts += int((~np.isclose(kept[name], xy, rtol=0, atol=1e-6) & both).sum())
                continue
            kept[name] = xy
    images = []
    for name in kept:
        p = folder / name
        if not p.is_file():
            raise InputError(csvs[0], f"labels image {name!r}, which is not in {folder}")
        images.append(p)
    return LabelledFolder(folder=folder, name=folder.name, bodyparts=list(bodyparts), images=images,
                          keypoints=np.stack(list(kept.values())), csv_paths=csvs, duplicates=duplicates,
                          conflicting_cells=conflicts)


def read_labelled_data(root: str | Path) -> tuple[list[LabelledFolder], list[Path]]:
    """All labelled recordings under ``root`` (a labelled folder itself, or a folder of them such as
    DLC's ``labeled-data/``): ``(folders sorted by name, folders that hold images but no labels)``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "labelled-data folder not found")
    candidates = [root] if _label_csvs(root) else sorted(p for p in root.iterdir() if p.is_dir())
    labelled, unlabelled = [], []
    for d in candidates:
        if _label_csvs(d):
            labelled.append(read_labelled_folder(d))
        elif any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir()):
            unlabelled.append(d)
    if not labelled:
        raise InputError(root, "no DeepLabCut labelled folders (CollectedData_*.csv) found")
    parts = labelled[0].bodyparts
    for f in labelled[1:]:
        if f.bodyparts != parts:
            raise InputError(f.csv_paths[0], f"bodyparts {f.bodyparts} differ from {labelled[0].name}'s {parts}")
    return labelled, unlabelled


def load_gray(path: str | Path) -> np.ndarray:
    """An image file as uint8 gray ``[H, W]`` (colour is averaged by PIL's luma)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(path, f"not a readable image ({type(err).__name__})") from None


def _cell(v: float) -> str:
    return "" if not np.isfinite(v) else repr(float(v))


def write_dlc_csv(path: str | Path, rows: Sequence[str | int], bodyparts: Sequence[str], keypoints: np.ndarray,
                  likelihood: np.ndarray | None = None, scorer: str = "articulate") -> Path:
    """Write a DeepLabCut CSV atomically: ``keypoints [N, K, 2]`` (NaN = empty cell), with a
    ``likelihood [N, K]`` column per point when given (predictions). ``rows`` are image names or
    frame indices (first column)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    n, k = len(rows), len(bodyparts)
    if kp.shape != (n, k, 2):
        raise ValueError(f"keypoints must be [{n}, {k}, 2], got {kp.shape}")
    lik = None if likelihood is None else np.asarray(likelihood, dtype=np.float64)
    if lik is not None and lik.shape != (n, k):
        raise ValueError(f"likelihood must be [{n}, {k}], got {lik.shape}")
    per = 3 if lik is not None else 2
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["scorer"] + [scorer] * (k * per))
    w.writerow(["bodyparts"] + [b for b in bodyparts for _ in range(per)])
    w.writerow(["coords"] + list(_COORDS[:per]) * k)
    for i, name in enumerate(rows):
        cells = [str(name)]
        for j in range(k):
            missing = not np.isfinite(kp[i, j]).all()
            cells += ["", ""] if missing else [_cell(kp[i, j, 0]), _cell(kp[i, j, 1])]
            if lik is not None:
                cells.append(_cell(lik[i, j]))
        w.writerow(cells)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path
