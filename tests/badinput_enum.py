"""The bad-input classes' enumeration: every tool command, every parser level and every declared option, read
from the parsers themselves (``build_parser()`` of each tool, sub-commands included), so that an option or a
command added tomorrow is in the suite the day it is added.

``levels()`` -> ``[Level]``: the argv prefix that reaches a parser (``["phantom", "wav2uti"]``) and the parser.
``Level.base_argv(tmp)`` builds the arguments every call of that level needs (required options and
positionals, as files in ``tmp`` where they are paths), so a case adds only the value under test.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from pathlib import Path

from articulate.training.options import OptionSpec, Parser, spec_of

# Required non-path values a command needs to get past argparse (everything else is derived from the parser).
PLAIN_VALUES = {"metrics": "rmse", "direction": None}  # None: the first of the option's choices


@dataclass
class Level:
    argv: list[str]  # e.g. ["phantom", "wav2uti"]
    parser: argparse.ArgumentParser
    fixed: dict[str, str] = field(default_factory=dict)  # positionals given (reproduce's direction)

    @property
    def command(self) -> str:
        return self.argv[0]

    @property
    def name(self) -> str:
        return " ".join([*self.argv, *self.fixed.values()])

    def actions(self) -> list[argparse.Action]:
        return [a for a in self.parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]

    def declared(self, kind: str | None = None, role: str | None = None) -> list[tuple[argparse.Action, OptionSpec]]:
        out = []
        for a in self.actions():
            spec = spec_of(a)
            if spec is not None and (kind is None or spec.kind == kind) and (role is None or spec.role == role):
                out.append((a, spec))
        return out

    def base_argv(self, tmp: Path, skip: tuple[argparse.Action, ...] = ()) -> list[str]:
        """The level's argv prefix plus a value for every required option and positional (except ``skip``)."""
        options, positionals = [], []
        for a in self.actions():
            if a in skip or not (a.required or not a.option_strings) or a.nargs == "*":
                continue
            spec = spec_of(a)
            if spec is not None and spec.kind == "path":
                value = tmp / f"{a.dest}.{'csv' if a.dest == 'out' and self.command == 'track-contours' else 'dat'}"
                if spec.role == "input":
                    value.write_bytes(b"input")
                value = str(value)
            elif a.dest in self.fixed:
                value = self.fixed[a.dest]
            elif a.choices:
                value = str(list(a.choices)[0])
            else:
                value = PLAIN_VALUES.get(a.dest) or "x"
            if a.option_strings:
                options += [a.option_strings[0], value]
            else:
                positionals.append(value)
        return [*self.argv, *positionals, *options]


def flag(action: argparse.Action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def tool_modules() -> dict[str, str]:
    from articulate.cli.main import tools

    return {name: module for name, (module, _) in tools().items()}


def levels() -> list[Level]:
    """Every parser level of every tool command (sub-commands one level each)."""
    out = []
    import inspect

    from articulate.directions import directions

    for name, module in sorted(tool_modules().items()):
        build = importlib.import_module(module).build_parser
        if "direction" in inspect.signature(build).parameters:  # reproduce: each direction brings its own options
            for d in directions():
                if d.reproduce:
                    out.append(Level([name], build(d.name), fixed={"direction": d.name}))
            continue
        stack = [([name], build())]
        while stack:
            argv, p = stack.pop(0)
            subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
            if not subs:
                out.append(Level(argv, p))
            for sub in subs:
                stack += [([*argv, choice], sp) for choice, sp in sub.choices.items()]
    return out


def all_parsers_are_checked() -> list[str]:
    """Problems: a tool without ``build_parser()`` returning our Parser, or a number option not declared."""
    problems = []
    for name, module in sorted(tool_modules().items()):
        mod = importlib.import_module(module)
        if not hasattr(mod, "build_parser"):
            problems.append(f"{name}: {module} has no build_parser()")
            continue
        if not isinstance(mod.build_parser(), Parser):
            problems.append(f"{name}: build_parser() is not an articulate.training.options.Parser")
    for level in levels():
        for a in level.actions():
            if a.type in (int, float) or (spec_of(a) is None and isinstance(a.default, (int, float))
                                          and not isinstance(a.default, bool)):
                problems.append(f"{level.name} {flag(a)}: a number option not declared with articulate.training.options")
    return problems


def bad_values(spec: OptionSpec) -> list[tuple[str, str]]:
    """``(value, what the refusal says)`` for a declared number / list / size option."""
    if spec.kind == "size":
        return [("0x10", "must be at least 2"), ("nanx10", "finite"), ("100000x100000", "must be at most"),
                ("240", "expected HxW"), ("axb", "whole number"), ("2.5x10", "whole number")]
    b = spec.bounds
    cases = [("nan", "finite"), ("inf", "finite"), ("-inf", "finite"), ("1e999", "finite"), ("abc", "number"),
             ("", "number")]
    if b.get("integer"):
        cases.append(("2.5", "whole number"))
    if b.get("low") is not None:
        low = b["low"]
        cases.append((str(low) if b.get("low_open") else str(low - 1), "above" if b.get("low_open") else "at least"))
    if b.get("high") is not None:
        cases.append((str(b["high"] + 1), "at most"))
    if spec.kind == "list":  # each element is checked: the bad one after a good one
        ok = good_values(spec)[0].split(",")[0]
        cases = [(f"{ok},{v}", what) for v, what in cases if v != ""] + [(f"{ok},,{ok}", "expected comma-separated")]
    return cases


def good_values(spec: OptionSpec) -> list[str]:
    """Values at the edges of the declared range, which the check must accept."""
    if spec.kind == "size":
        return ["2x2", "240x320"]
    b = spec.bounds
    out = []
    for edge, open_ in ((b.get("low"), b.get("low_open")), (b.get("high"), b.get("high_open"))):
        if edge is not None and not open_:
            out.append(str(int(edge)) if b.get("integer") else str(float(edge)))
    if b.get("low") is not None and b.get("low_open"):
        out.append(str(b["low"] + (1 if b.get("integer") else 0.5)))
    out = out or ["1"]
    return [f"{v},{v}" for v in out] if spec.kind == "list" else out
