"""YAML from users, read safely: no tags that build objects, and aliases cannot multiply the document.

PyYAML's ``safe_load`` never runs code, but a "billion laughs" (anchors referring to lists of anchors)
is a small file whose expansion, when a consumer walks or copies it (jsonargparse does), fills the
memory. :func:`check_yaml` composes the node graph (aliases are shared nodes, so this is cheap) and
counts the nodes the document would have once every alias is expanded; above ``MAX_NODES`` it is refused
with one line. :func:`load_yaml` is check + ``safe_load``; :func:`bounded` wraps another loader
(jsonargparse's) the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from articulate.errors import InputError

__all__ = ["check_yaml", "load_yaml", "bounded", "MAX_NODES", "MAX_BYTES"]

MAX_NODES = 200_000  # the largest config of the project has a few hundred
MAX_BYTES = 16 * 1024 * 1024


def _expanded_size(root, limit: int) -> int:
    """Nodes of the document with every alias expanded (stops counting past ``limit``)."""
    import yaml

    memo: dict[int, int] = {}
    # iterative post-order: deep documents do not hit Python's recursion limit
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in memo:
            continue
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            memo[id(node)] = 1
            continue
        if not expanded:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in memo)
            continue
        total = 1
        for c in children:
            total += memo.get(id(c), 1)
            if total > limit:
                return total
        memo[id(node)] = total
    return memo.get(id(root), 1)


def check_yaml(text: str, source: str | Path | None = None, max_nodes: int = MAX_NODES) -> None:
    """Refuse YAML text that is too large or expands (through aliases) beyond ``max_nodes`` nodes."""
    import yaml

    if len(text) > MAX_BYTES:
        raise InputError(source, f"YAML of {len(text):,} characters is too large (at most {MAX_BYTES:,})")
    if "*" not in text and "<<" not in text:  # no alias, no merge key: the size is the text's
        return
    try:
        for doc in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if doc is not None and _expanded_size(doc, max_nodes) > max_nodes:
                raise InputError(source, f"YAML aliases expand to more than {max_nodes:,} nodes (a 'billion laughs' "
                                         "document?): refused")
    except RecursionError:
        raise InputError(source, "YAML nested too deeply") from None
    except yaml.YAMLError:
        return  # not valid YAML: the loader reports it in its own words


def load_yaml(text: str, source: str | Path | None = None) -> Any:
    """``yaml.safe_load`` of ``text`` after :func:`check_yaml`."""
    import yaml

    check_yaml(text, source)
    return yaml.safe_load(text)


def bounded(loader: Callable[..., Any]) -> Callable[..., Any]:
    """``loader`` (text -> value) preceded by :func:`check_yaml`."""

    def load(stream):
        if isinstance(stream, str):
            check_yaml(stream)
        return loader(stream)

    load.__wrapped__ = loader  # type: ignore[attr-defined]
    return load
