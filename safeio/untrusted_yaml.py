"""The one way we read YAML we did not write: bounded bytes, nesting, nodes and aliases.

Task files, triage files and plans come from agents and operators. Before any recursive
construction sees them, libyaml's (iterative) event stream is walked once to measure real
nesting and the size with every alias expanded, and to refuse an alias to a collection that
is still open (a cycle); the loader then refuses a key written twice in one mapping (a
second `blocks:` must not win silently). Files are opened only when they are regular files,
without blocking and without following a link.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from safeio.regular import MAX_DEPTH, MAX_NODES, FileTooLarge, InputRefused, read_regular

__all__ = ["MAX_DEPTH", "MAX_NODES", "FileTooLarge", "InputRefused", "TooManyNodes",
           "load_file", "parse", "read_regular"]

MAX_EXPANDED = 2 * 1024 * 1024  # characters of scalars plus one per node, aliases expanded
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class TooManyNodes(InputRefused):
    """A document holds more nodes (aliases expanded) than the caller allowed."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} has more than {limit} nodes (YAML aliases expanded)")
        self.limit = limit


class _DuplicateKey(yaml.YAMLError):
    """One mapping writes a key twice; `parse` names the file."""

    def __init__(self, key: object, line: int) -> None:
        super().__init__(f"writes the key {repr(key)[:60]} twice in one mapping (line {line})")


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a mapping that writes one key twice (the last would win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        explicit = [key for key, _ in node.value if key.tag != _MERGE]
        mapping = super().construct_mapping(node, deep=deep)
        seen: set[Any] = set()
        for key_node in explicit:  # constructed already: these come from the loader's cache
            key = self.construct_object(key_node)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return mapping


def check_shape(text: str | bytes, what: str, max_nodes: int = MAX_NODES) -> int:
    """Refuse nesting deeper than MAX_DEPTH, a document larger than MAX_EXPANDED or with more
    than MAX_NODES nodes once its aliases are expanded (what the loader builds and anything
    recursive walks), and an alias inside the collection it names (a cycle). Returns the
    node count."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor: (expanded size, nodes)
    stack: list[list[Any]] = [[0, 0, None]]  # per open collection: size, nodes, anchor
    total = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([1, 1, event.anchor])
            if len(stack) - 1 > MAX_DEPTH:
                raise InputRefused(f"{what} is nested deeper than {MAX_DEPTH} levels")
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            size, nodes, anchor = stack.pop()
            if anchor:
                sizes[anchor] = (size, nodes)
            _grow(stack[-1], size, nodes, what)
        elif isinstance(event, yaml.AliasEvent):
            if any(frame[2] == event.anchor for frame in stack):
                raise InputRefused(f"{what} has a recursive YAML alias (*{event.anchor} "
                                   f"inside the collection it names)")
            size, nodes = sizes.get(event.anchor, (1, 1))
            _grow(stack[-1], size, nodes, what)
            total += nodes
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                sizes[event.anchor] = (1 + len(event.value), 1)
            _grow(stack[-1], 1 + len(event.value), 1, what)
            total += 1
        if total > max_nodes:
            raise TooManyNodes(what, max_nodes)
    return total


def _grow(frame: list[Any], size: int, nodes: int, what: str) -> None:
    """Add a finished node's expanded size to the collection holding it, within bounds."""
    frame[0] += size
    frame[1] += nodes
    if frame[0] > MAX_EXPANDED:
        raise InputRefused(f"{what} expands to more than {MAX_EXPANDED} characters "
                           f"(YAML aliases)")


def load_checked(raw: str | bytes) -> Any:
    """Load RAW with the safe loader, only after check_shape; a key written twice in one
    mapping raises a yaml.YAMLError (`parse` turns it into InputRefused)."""
    return yaml.load(raw, Loader=_Loader)


def parse(raw: bytes, what: str, max_nodes: int = MAX_NODES) -> Any:
    """Shape-check, then load RAW (UTF-8 YAML) with the safe loader; yaml.YAMLError on syntax."""
    check_shape(raw, what, max_nodes)
    try:
        return load_checked(raw)
    except _DuplicateKey as err:
        raise InputRefused(f"{what} {err}") from None


def load_file(path: Path, max_bytes: int) -> Any:
    """read_regular + parse, naming the file in every refusal."""
    return parse(read_regular(path, max_bytes), path.name)
