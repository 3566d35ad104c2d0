"""DeepLabCut CSVs: reading labels (old and new index layouts, missing cells, duplicate CSVs), writing
predictions in DLC's exact layout, refusals naming the file, and the shared labelled set."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from articulate.errors import InputError
from articulate.readers.dlc import read_dlc_csv, read_labelled_data, read_labelled_folder, write_dlc_csv

PARTS = ["vallecula", "tongueRoot1", "hyoid"]


def _write_images(folder, names, size=(24, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(np.full(size, 40, np.uint8)).save(folder / n)


def _label_csv(path, rows, parts=PARTS, index_cols=1, scorer="AW"):
    """Write a label CSV by hand, the way DLC does (independent of the writer under test)."""
    pad = [""] * (index_cols - 1)
    lines = [["scorer", *pad] + [scorer] * (2 * len(parts)),
             ["bodyparts", *pad] + [p for p in parts for _ in (0, 1)],
             ["coords", *pad] + ["x", "y"] * len(parts)]
    for name, values in rows:
        idx = [f"labeled-data\\{path.parent.name}\\{name}"] if index_cols == 1 else ["labeled-data", path.parent.name, name]
        lines.append(idx + ["" if v is None else repr(v) for v in values])
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(lines)


def test_reads_labels_with_missing_cells_old_layout(tmp_path):
    rec = tmp_path / "rec01"
    _write_images(rec, ["img001.png", "img002.png"])
    _label_csv(rec / "CollectedData_AW.csv", [("img001.png", [1.5, 2.5, 3.0, 4.0, None, None]),
                                               ("img002.png", [5.0, 6.0, None, 8.0, 9.0, 10.0])])
    f = read_labelled_folder(rec)
    assert f.bodyparts == PARTS and [p.name for p in f.images] == ["img001.png", "img002.png"]
    np.testing.assert_array_equal(f.keypoints[0, :2], [[1.5, 2.5], [3.0, 4.0]])
    assert np.isnan(f.keypoints[0, 2]).all()
    # a point with only one coordinate is missing as a whole
    assert np.isnan(f.keypoints[1, 1]).all() and f.keypoints[1, 2].tolist() == [9.0, 10.0]


def test_reads_new_three_column_index_layout(tmp_path):
    rec = tmp_path / "rec02"
    _write_images(rec, ["a.png"])
    _label_csv(rec / "CollectedData_X.csv", [("a.png", [1, 2, 3, 4, 5, 6])], index_cols=3)
    t = read_dlc_csv(rec / "CollectedData_X.csv")
    assert t.rows == ["labeled-data/rec02/a.png"] and t.image_names == ["a.png"] and t.likelihood is None
    assert read_labelled_folder(rec).keypoints.shape == (1, 3, 2)


def test_second_csv_of_the_same_labels_is_deduplicated(tmp_path):
    rec = tmp_path / "TaL_03"
    _write_images(rec, ["i1.png", "i2.png", "i3.png"])
    _label_csv(rec / "CollectedData_AW.csv", [("i1.png", [1, 1, 2, 2, 3, 3]), ("i2.png", [4, 4, 5, 5, 6, 6])])
    # an older export: i1 identical, i2 with a re-labelled hyoid, and one image the canonical file lacks
    _label_csv(rec / "Tal03CollectedData_AW.csv", [("i1.png", [1, 1, 2, 2, 3, 3]), ("i2.png", [4, 4, 5, 5, 7, 7]),
                                                   ("i3.png", [8, 8, 9, 9, 10, 10])])
    (rec / "machinelabels-iter0.csv").write_text("not labels")  # network predictions: ignored
    f = read_labelled_folder(rec)
    assert [p.name for p in f.images] == ["i1.png", "i2.png", "i3.png"]
    assert f.duplicates == 2 and f.conflicting_cells == 2
    assert f.keypoints[1, 2].tolist() == [6.0, 6.0]  # the canonical CollectedData_*.csv wins


@pytest.mark.parametrize("text, problem", [
    ("", "3 header rows"),
    ("a,b\n1,2\n3,4\n", "expected \\['scorer', 'bodyparts', 'coords'\\]"),
    ("scorer,AW,AW\nbodyparts,p,p\ncoords,x,y\nimg.png,1.0,abc\n", "line 4: 'abc' is not a number"),
    ("scorer,AW,AW,AW\nbodyparts,p,p,q\ncoords,x,y,x\nimg.png,1,2,3\n", "not a multiple of 2"),
    ("scorer,AW,AW\nbodyparts,p,p\ncoords,x,y\n", "no data rows"),
    ("scorer,AW,AW\nindividuals,a,a\nbodyparts,p,p\ncoords,x,y\n", "multi-animal"),
])
def test_bad_csv_is_an_input_error_naming_the_file(tmp_path, text, problem):
    bad = tmp_path / "CollectedData_bad.csv"
    bad.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        read_dlc_csv(bad)
    assert str(err.value).startswith(str(bad))


def test_missing_image_and_empty_folder_are_refused(tmp_path):
    rec = tmp_path / "r"
    _write_images(rec, ["a.png"])
    _label_csv(rec / "CollectedData_AW.csv", [("b.png", [1, 2, 3, 4, 5, 6])])
    with pytest.raises(InputError, match="labels image 'b.png'"):
        read_labelled_folder(rec)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no DeepLabCut labelled folders"):
        read_labelled_data(empty)


def test_prediction_csv_layout_matches_deeplabcut(tmp_path):
    kp = np.array([[[10.25, 20.5], [np.nan, np.nan], [3.0, 4.0]], [[1.0, 2.0], [5.5, 6.5], [7.0, 8.0]]])
    lik = np.array([[0.9, 0.01, 0.5], [1.0, 0.75, 0.25]])
    path = write_dlc_csv(tmp_path / "tracks.csv", [0, 1], PARTS, kp, lik, scorer="net")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracks.csv"]  # no temp file left
    # pandas-free parse of DeepLabCut's layout: 3 header rows, index column, x/y/likelihood per point
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["scorer"] + ["net"] * 9
    assert rows[1] == ["bodyparts"] + [p for p in PARTS for _ in range(3)]
    assert rows[2] == ["coords"] + ["x", "y", "likelihood"] * 3
    assert [r[0] for r in rows[3:]] == ["0", "1"]
    assert rows[3][4:7] == ["", "", "0.01"]  # a missing point: empty x and y, its likelihood kept
    assert float(rows[3][1]) == 10.25 and float(rows[4][9]) == 0.25
    # and our reader gets the same numbers back
    t = read_dlc_csv(path)
    assert t.bodyparts == PARTS and t.rows == ["0", "1"] and t.scorer == "net"
    np.testing.assert_array_equal(t.keypoints, kp)
    np.testing.assert_array_equal(t.likelihood, lik)


def test_label_csv_written_without_likelihood_reads_back(tmp_path):
    kp = np.array([[[1.0, 2.0], [3.0, 4.0], [np.nan, np.nan]]])
    path = write_dlc_csv(tmp_path / "CollectedData_me.csv", ["labeled-data\\r\\img.png"], PARTS, kp)
    rows = list(csv.reader(path.open()))
    assert rows[2] == ["coords"] + ["x", "y"] * 3 and rows[3][0] == "labeled-data\\r\\img.png"
    t = read_dlc_csv(path)
    assert t.likelihood is None and t.image_names == ["img.png"]
    np.testing.assert_array_equal(t.keypoints, kp)


def test_shared_labelled_set(samples_dir):
    root = samples_dir / "dlc-labelled"
    if not root.is_dir():
        pytest.skip("dlc-labelled samples absent")
    folders, unlabelled = read_labelled_data(root)
    images = sum(len(list(d.glob("*.png"))) for d in root.iterdir() if d.is_dir())
    # 568 frames in 28 recordings on disk; one folder (R_List_002, 20 frames) has no labels
    assert images == 568 and len(folders) + len(unlabelled) == 28
    assert [d.name for d in unlabelled] == ["R_List_002"]
    assert len(folders) == 27 and sum(len(f) for f in folders) == 548
    assert folders[0].bodyparts[:11] == ["vallecula", "tongueRoot1", "tongueRoot2", "tongueBody1", "tongueBody2",
                                         "tongueDorsum1", "tongueDorsum2", "tongueBlade1", "tongueBlade2",
                                         "tongueTip1", "tongueTip2"]
    tal = next(f for f in folders if f.name == "TaL_1to8003")
    assert len(tal) == 18 and tal.duplicates == 18  # its second CSV repeats the same 18 images
    kp = np.concatenate([f.keypoints for f in folders])
    assert np.isfinite(kp[:, :11]).all(-1).mean() > 0.98  # the tongue points are nearly always labelled
    assert (kp[..., 0][np.isfinite(kp[..., 0])] < 320).all() and (kp[..., 1][np.isfinite(kp[..., 1])] < 240).all()
