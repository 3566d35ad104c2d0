"""The layering rules, checked on the source: layers only point down.

core (``articulate`` minus ``articulate.cli`` / ``articulate.experiments`` / ``articulate.training``) imports
none of the framework layers (``lightning_modules``, ``datamodules``, ``callbacks``) nor the top; the framework
layers never import the top (``articulate.cli``, ``articulate.experiments``, ``articulate.training``). Within
the top, the commands (``articulate.cli``) use the reproduction and the bench (``articulate.experiments``) and
both use ``articulate.training``; neither of those imports the commands, and ``training`` imports neither.
Every import counts, deferred ones inside functions included: a deferred import hides a cycle, it does not
remove it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK = ("lightning_modules", "datamodules", "callbacks")
TOP = ("articulate.cli", "articulate.experiments", "articulate.training")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
    return out


def layer(module: str) -> str | None:
    if module.startswith(TOP) or module in TOP:
        return "cli"
    if module.split(".")[0] in FRAMEWORK:
        return "framework"
    if module.split(".")[0] == "articulate":
        return "core"
    return None


def violations(files: list[Path], forbidden: set[str]) -> list[str]:
    bad = []
    for f in files:
        for line, mod in imports_of(f):
            if layer(mod) in forbidden:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    return bad


def core_files() -> list[Path]:
    return [p for p in (ROOT / "articulate").rglob("*.py")
            if p.relative_to(ROOT / "articulate").parts[0] not in ("cli", "experiments", "training")]


def imports_into(files: list[Path], package: str) -> list[str]:
    return [f"{f.relative_to(ROOT)}:{line} imports {mod}" for f in files for line, mod in imports_of(f)
            if mod == package or mod.startswith(package + ".")]


def framework_files() -> list[Path]:
    return [p for d in FRAMEWORK for p in (ROOT / d).rglob("*.py")]


def test_core_imports_neither_framework_nor_cli():
    assert violations(core_files(), {"framework", "cli"}) == []


def test_framework_layers_never_import_the_cli():
    assert violations(framework_files(), {"cli"}) == []


def test_the_reproduction_and_training_never_import_the_commands():
    experiments = list((ROOT / "articulate" / "experiments").rglob("*.py"))
    training = list((ROOT / "articulate" / "training").rglob("*.py"))
    assert imports_into(experiments + training, "articulate.cli") == []
    assert imports_into(training, "articulate.experiments") == []


@pytest.mark.parametrize("source, expected", [
    ("from lightning_modules.base import ArticulateModule\n", ["x.py:1 imports lightning_modules.base"]),
    ("def f():\n    from articulate.cli.main import main\n", ["x.py:2 imports articulate.cli.main"]),
    ("import datamodules.sampling as s\n", ["x.py:1 imports datamodules.sampling"]),
    ("import torch\nfrom articulate.signal import mel\n", []),
])
def test_the_check_catches_upward_imports(tmp_path, monkeypatch, source, expected):
    """The checker itself: a deferred (function-level) import counts as much as a top-level one."""
    f = tmp_path / "x.py"
    f.write_text(source)
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert violations([f], {"framework", "cli"}) == expected


def test_no_python_file_over_500_lines():
    files = [*core_files(), *framework_files(), *(ROOT / "articulate" / "cli").rglob("*.py"),
             *(ROOT / "articulate" / "experiments").rglob("*.py"), *(ROOT / "articulate" / "training").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "tools").rglob("*.py")]
    big = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 500}
    assert big == {}
