"""Praat TextGrids: the real AAA exports (long format), the same content in Praat's short format
and in UTF-16, point tiers, the words-tier rule, and one-line refusals naming the file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from articulate.errors import InputError
from articulate.readers.textgrid import read_textgrid, textgrid_words, words_tier
from articulate.readers.ultrasound import read_utterance

SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
2.5
<exists>
3
"IntervalTier"
"segments"
0
2.5
2
0
1.2
"b"
1.2
2.5
"a"
"IntervalTier"
"Words"
0
2.5
4
0
0.4
""
0.4
1.2
"say ""hi"""
1.2
2.0
"sil"
2.0
2.5
"ba"
"TextTier"
"events"
0
2.5
1
0.8
"click"
'''


def test_real_aaa_textgrids_long_format(samples_dir):
    grid = read_textgrid(samples_dir / "aaa-satkit" / "File009.TextGrid")
    assert (grid.xmin, grid.xmax) == (0.0, 2.92591836735)
    assert [(t.name, t.kind, len(t.items)) for t in grid.tiers] == [("word", "interval", 3), ("segment", "interval", 5)]
    seg = grid.tier("segment").items
    assert [i.text for i in seg] == ["", "beep", "n", "O", ""] and seg[1].xmin == 1.73204498901
    assert words_tier(grid).name == "word"
    assert [(w.text, w.xmin, w.xmax) for w in textgrid_words(grid)] == [("na", 2.11282836735, 2.31491836735)]
    other = read_textgrid(samples_dir / "aaa-satkit" / "File156.TextGrid")  # indented with spaces, trailing blanks
    assert [w.text for w in textgrid_words(other)] == ["gap"] and other.tier("segment").items[4].text == "p"


def test_short_format_utf16_and_the_words_rule(tmp_path):
    path = tmp_path / "u.TextGrid"
    path.write_text(SHORT, encoding="utf-8")
    grid = read_textgrid(path)
    assert [t.kind for t in grid.tiers] == ["interval", "interval", "point"]
    assert grid.tier("events").items[0].time == 0.8 and grid.tier("events").items[0].mark == "click"
    tier = words_tier(grid)
    assert tier.name == "Words"  # named words (any case) beats the first interval tier
    assert [w.text for w in textgrid_words(grid)] == ['say "hi"', "ba"]  # "" escapes a quote; sil dropped
    assert [w.text for w in textgrid_words(grid, start=1.0, stop=1.9)] == ['say "hi"']
    assert [w.text for w in textgrid_words(grid, start=1.3)] == ["ba"]
    utf16 = tmp_path / "u16.TextGrid"
    utf16.write_text(SHORT.replace("ba", "bä"), encoding="utf-16")  # Praat's encoding for non-ASCII labels
    assert [w.text for w in textgrid_words(read_textgrid(utf16))] == ['say "hi"', "bä"]
    # no tier named like words: the first tier whose name contains "word", else the first interval tier
    renamed = tmp_path / "r.TextGrid"
    renamed.write_text(SHORT.replace('"Words"', '"phones"'))
    assert words_tier(read_textgrid(renamed)).name == "segments"
    renamed.write_text(SHORT.replace('"Words"', '"my_words"'))
    assert words_tier(read_textgrid(renamed)).name == "my_words"


def test_textgrid_is_the_transcript_without_a_prompt(samples_dir, tmp_path):
    for suffix in (".ult", "US.txt", ".wav", ".TextGrid"):
        shutil.copy(samples_dir / "aaa-satkit" / f"File009{suffix}", tmp_path / f"File009{suffix}")
    utt = read_utterance(tmp_path / "File009.ult")
    assert (utt.text, utt.text_source) == ("na", "textgrid")
    # word times move with the trimmed audio: 1.01619 s... dropped before the first frame
    offset = utt.trim["samples_dropped_start"] / utt.sr
    assert utt.words[0].xmin == pytest.approx(2.11282836735 - offset) and utt.words[0].text == "na"
    shutil.copy(samples_dir / "aaa-satkit" / "File009.txt", tmp_path / "File009.txt")
    with_prompt = read_utterance(tmp_path / "File009.ult")
    assert with_prompt.text_source == "txt" and with_prompt.speaker == "Pertti"  # AAA's "Pertti," before the comma
    assert with_prompt.text == "na"  # the AAA prompt line "007   na" without its prompt number
    assert np.array_equal(with_prompt.audio, utt.audio)


def test_refusals_name_the_file(samples_dir, tmp_path):
    real = (samples_dir / "aaa-satkit" / "File009.TextGrid").read_bytes()
    cut = tmp_path / "cut.TextGrid"
    cut.write_bytes(real[: len(real) // 2])
    with pytest.raises(InputError, match=r"cut\.TextGrid: TextGrid ends early .*truncated file\?"):
        read_textgrid(cut)
    other = tmp_path / "other.TextGrid"
    other.write_text('File type = "ooTextFile"\nObject class = "Pitch 1"\n0\n1\n')
    with pytest.raises(InputError, match=r"other\.TextGrid: not a Praat TextGrid \(File type 'ooTextFile', Object class 'Pitch 1'\)"):
        read_textgrid(other)
    binary = tmp_path / "bin.TextGrid"
    binary.write_bytes(b"ooBinaryFile\x08TextGrid\x00\x00\x01")
    with pytest.raises(InputError, match=r"bin\.TextGrid: binary Praat TextGrid"):
        read_textgrid(binary)
    bad = tmp_path / "bad.TextGrid"
    bad.write_text(SHORT.replace('"IntervalTier"\n"Words"', '"PointTier"\n"Words"'))
    with pytest.raises(InputError, match=r"bad\.TextGrid: malformed TextGrid: tier 2 has unknown class 'PointTier'"):
        read_textgrid(bad)
    backwards = tmp_path / "back.TextGrid"
    backwards.write_text(SHORT.replace("0.4\n1.2\n\"say", "1.4\n1.2\n\"say"))
    with pytest.raises(InputError, match=r"back\.TextGrid: tier 'Words' interval 2 ends \(1\.2 s\) before it starts"):
        read_textgrid(backwards)
    (tmp_path / "empty.TextGrid").write_text("  \n")
    with pytest.raises(InputError, match=r"empty\.TextGrid: empty TextGrid file"):
        read_textgrid(tmp_path / "empty.TextGrid")
    with pytest.raises(InputError, match=r"none\.TextGrid: TextGrid file not found"):
        read_textgrid(tmp_path / "none.TextGrid")
    # through read_utterance: the broken TextGrid is named
    for suffix in (".ult", "US.txt", ".wav"):
        shutil.copy(samples_dir / "aaa-satkit" / f"File009{suffix}", tmp_path / f"File009{suffix}")
    (tmp_path / "File009.TextGrid").write_bytes(real[:300])
    with pytest.raises(InputError, match=r"File009\.TextGrid: TextGrid ends early"):
        read_utterance(tmp_path / "File009.ult")
