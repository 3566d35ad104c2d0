"""The user-facing docs stay true to a clone: every repository path they name exists, every link resolves
(anchors included), every dotted module they name is a file of the repository, every `make` target and
`articulate` command (with its options) the README and docs/results/ show is real, and the README stays a
manual (at most 250 lines; the research history lives in docs/experiments/)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
TOP = ("configs", "articulate", "docs", "tests", "lightning_modules", "datamodules", "callbacks", "tools", ".ci")
# a repository path: one of the top folders, then path characters; placeholders are caught below
PATH = re.compile(r"(?<![\w./$~-])((?:" + "|".join(re.escape(t) for t in TOP) + r")/[\w./<>*{}\-]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
MODULE = re.compile(r"^((?:articulate|callbacks|lightning_modules|datamodules)(?:\.\w+)+)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


@functools.cache
def clone_files() -> frozenset[str] | None:
    """Files and folders a clone has: tracked or addable (not ignored), from git; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = {f for f in out.splitlines() if (ROOT / f).exists()}
    return frozenset(files | {str(parent) for f in files for parent in Path(f).parents if str(parent) != "."})


def in_clone(path: str) -> bool:
    """The path exists and is not git-ignored (an ignored file exists here but not in a clone)."""
    files = clone_files()
    path = path.rstrip("/")
    return (ROOT / path).exists() and (files is None or path in files)


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def is_placeholder(path: str) -> bool:
    """Patterns and placeholders (`configs/<direction>.yaml`, `tests/test_*.py`, `logs/.../x`) name no one file."""
    return any(c in path for c in "<>*{}") or "..." in path


def repo_paths(text: str) -> list[str]:
    """Repository paths named anywhere in a markdown text (code spans, code blocks, prose), placeholders left out."""
    found = []
    for m in PATH.finditer(text):
        path = m.group(1).rstrip(".")
        if not is_placeholder(path):
            found.append(path)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out, in_code = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := HEADING.match(line)):
            out.add(slug(m.group(1)))
    return out


def broken_links(doc: Path, text: str) -> list[str]:
    bad = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not a repository file
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.is_relative_to(ROOT) or not in_clone(str(dest.relative_to(ROOT))):
            bad.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(target)
    return bad


def missing_modules(text: str) -> list[str]:
    """Dotted names in code spans (`callbacks.ema.EDMEMA`) whose module is not a file of the repository."""
    bad = []
    for span in CODE_SPAN.findall(text):
        m = MODULE.match(span.strip())
        if not m:
            continue
        parts = m.group(1).split(".")
        ok = any((ROOT.joinpath(*parts[:i]).with_suffix(".py")).is_file() or ROOT.joinpath(*parts[:i], "__init__.py").is_file()
                 for i in range(len(parts), 1, -1))
        if not ok:
            bad.append(m.group(1))
    return bad


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_links_and_modules_a_doc_names_exist(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted({p for p in repo_paths(text) if not in_clone(p)})
    assert not missing, f"{doc.relative_to(ROOT)} names paths a clone does not have: {missing}"
    assert not broken_links(doc, text), f"{doc.relative_to(ROOT)}: broken links {broken_links(doc, text)}"
    assert not missing_modules(text), f"{doc.relative_to(ROOT)}: no such module {missing_modules(text)}"


# ---------------------------------------------------------------- commands: make targets, articulate tools and options

MAKE = re.compile(r"(?<![\w-])make ([a-z][\w%<>-]*)((?: [A-Z_]+=(?:\"[^\"]*\"|\S+))*)")
TOOL = re.compile(r"(?<![\w-])(?:\.venv/bin/)?articulate ([a-z][\w-]*)([^`#\n]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][\w-]*)(?![\w.-])")  # --out, not --trainer.devices (a LightningCLI override)
LIGHTNING = ("fit", "validate", "test", "predict")


def command_lines(text: str) -> list[str]:
    """The code a markdown text shows: code-block lines and code spans (table pipes unescaped)."""
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif in_code:
            lines.append(line)
        else:
            lines += CODE_SPAN.findall(line)
    return [line.replace("\\|", "|") for line in lines]


def make_targets() -> tuple[set[str], set[str]]:
    """The Makefile's explicit targets and its variables (``NAME ?=``)."""
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", text, re.M))
    return targets, set(re.findall(r"^([A-Z_]+) \?=", text, re.M))


def bad_make(lines: list[str]) -> list[str]:
    from articulate.directions import directions

    names = {d.name for d in directions()}
    reproducible = {d.name for d in directions() if d.reproduce}
    targets, variables = make_targets()
    bad = []
    for line in lines:
        for target, assigns in MAKE.findall(line):
            if "<" in target:
                ok = target.split("<")[0] in ("train-", "reproduce-")
            elif target.startswith("train-"):
                ok = target[len("train-"):] in names
            elif target.startswith("reproduce-"):
                ok = target[len("reproduce-"):] in reproducible
            else:
                ok = target in targets
            bad += [] if ok else [f"make {target}"]
            bad += [f"make {target} {v}=" for v in re.findall(r"([A-Z_]+)=", assigns) if v not in variables]
    return bad


def help_text(command: str, sub: str | None) -> str | None:
    """``articulate <command> [sub] --help`` in-process (None: not a tool)."""
    from articulate.cli.main import tools

    known = tools()
    if command not in known:
        return None
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        importlib.import_module(known[command][0]).main([sub, "--help"] if sub else ["--help"])
    return out.getvalue()


def bad_tools(lines: list[str]) -> list[str]:
    bad = []
    for line in lines:
        for command, rest in TOOL.findall(line):
            if command in LIGHTNING:
                continue
            words = rest.split()
            sub = words[0].split("|")[0] if command == "phantom" and words else None
            text = help_text(command, sub)
            if text is None:
                bad.append(f"articulate {command}")
                continue
            bad += [f"articulate {command} {flag}" for flag in FLAG.findall(rest) if flag not in text]
        # a variant or preset (in a make ARGS or an articulate line) is an overlay file; `--variant V` is a placeholder
        for option, name in re.findall(r"--(variant|preset)[ =]([a-z]\w*)", line):
            bad += [] if list(ROOT.glob(f"configs/*/{name}.yaml")) else [f"--{option} {name}"]
    return bad


def user_docs() -> list[Path]:
    return [ROOT / "README.md", ROOT / "docs" / "data.md", *sorted((ROOT / "docs" / "results").glob("*.md"))]


@pytest.mark.parametrize("doc", user_docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_a_user_doc_shows_are_real(doc):
    lines = command_lines(doc.read_text(encoding="utf-8"))
    assert not bad_make(lines), f"{doc.relative_to(ROOT)}: no such make target or variable {bad_make(lines)}"
    assert not bad_tools(lines), f"{doc.relative_to(ROOT)}: no such articulate command or option {bad_tools(lines)}"


def test_readme_is_a_manual_of_at_most_250_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move history to docs/experiments/"


def test_the_scanners_see_what_is_wrong():
    # the checks above can fail: a made-up path, link, anchor and module are each reported, placeholders are not
    text = ("Run `configs/mri2audio/no_such_variant.yaml` and configs/mri2audio.yaml; see tests/test_no_such_file.py.\n"
            "`configs/<direction>.yaml`, `tests/test_bad_inputs_*.py` and `logs/.../last.ckpt` are patterns.\n"
            "[a](docs/no_such.md) [b](docs/ARCHITECTURE.md#no-such-heading) [c](docs/ARCHITECTURE.md) [d](https://x.org/y)\n"
            "`callbacks.ema.EDMEMA` exists, `articulate.no_such_module.Thing` does not.\n")
    assert repo_paths(text) == ["configs/mri2audio/no_such_variant.yaml", "configs/mri2audio.yaml", "tests/test_no_such_file.py",
                                "docs/no_such.md", "docs/ARCHITECTURE.md", "docs/ARCHITECTURE.md"]
    assert [p for p in repo_paths(text) if not in_clone(p)] == ["configs/mri2audio/no_such_variant.yaml",
                                                                 "tests/test_no_such_file.py", "docs/no_such.md"]
    if clone_files() is not None:  # a file that exists here but is git-ignored is not in a clone
        assert in_clone("docs/ARCHITECTURE.md") and in_clone("configs/") and not in_clone(".venv/bin/python")
    assert broken_links(ROOT / "README.md", text + "[e](../shared/REFERENCES.md)") == [
        "docs/no_such.md", "docs/ARCHITECTURE.md#no-such-heading", "../shared/REFERENCES.md"]
    results = ROOT / "docs" / "results" / "mri2audio.md"
    assert broken_links(results, "[a](#the-papers-tables-make-reproduce-direction) [b](../../README.md#your-data)") == []
    assert broken_links(results, "[a](#no-such-section)") == ["#no-such-section"]
    assert missing_modules(text) == ["articulate.no_such_module.Thing"]
    assert slug("2026-12-02 · The QUICK preset: 12 epochs (`46e95b2`)") == "2026-12-02--the-quick-preset-12-epochs-46e95b2"
    lines = command_lines("```\nmake train-mri2audio QUICK=1 ARGS=\"--variant frame_translator\"\nmake train-nodir\n```\n"
                          "`make reproduce-uti2contour`, `make bench BENCHOUT=x`, `make lint`, `make train-<direction>`\n"
                          "`articulate inspect DATA --json --no-such-flag`, `articulate nosuchtool`, "
                          "`articulate phantom ceiling --subjects 160 --trainer.devices 2`, `articulate train mri2audio --variant nope`, "
                          "`make train-wav2uti ARGS=\"--preset nopreset\"`, `ARGS` takes `--variant V`")
    assert bad_make(lines) == ["make train-nodir", "make reproduce-uti2contour", "make bench BENCHOUT="]
    assert bad_tools(lines) == ["articulate inspect --no-such-flag", "articulate nosuchtool", "--variant nope", "--preset nopreset"]
