"""The one way we read YAML we did not write: bounded bytes, nesting and alias expansion.

Task files, triage files and plans come from agents and operators. Before any recursive
construction sees them, libyaml's (iterative) event stream is walked once to measure real
nesting and the node count with every alias expanded; files are opened only when they are
regular files, without blocking and without following a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from exceptions import ActivityRuntimeError

MAX_DEPTH = 64
MAX_EXPANDED = 2 * 1024 * 1024  # characters of scalars plus one per node, aliases expanded
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class InputRefused(ActivityRuntimeError, ValueError):
    """Input we did not write exceeds a limit or is not a regular file; retrying won't help."""


class FileTooLarge(InputRefused):
    """A file exceeded the size we are willing to read."""


def read_regular(path: Path, max_bytes: int) -> bytes:
    """At most MAX_BYTES of the regular file PATH; never blocks on a FIFO, never follows a
    final symlink (OSError ELOOP), raises InputRefused for anything else that is not a file."""
    fd = os.open(path, _OPEN)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputRefused(f"{path.name} is not a regular file")
        if info.st_size > max_bytes:
            raise FileTooLarge(f"{path.name} is larger than {max_bytes} bytes")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise FileTooLarge(f"{path.name} is larger than {max_bytes} bytes")
    return data


def check_shape(text: str | bytes, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH or a document larger than MAX_EXPANDED once its
    aliases are expanded (what the loader would build in memory)."""
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = [[0, None]]
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([1, event.anchor])
            if len(stack) - 1 > MAX_DEPTH:
                raise InputRefused(f"{what} is nested deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            count, anchor = stack.pop()
        elif isinstance(event, yaml.AliasEvent):
            count, anchor = sizes.get(event.anchor, 1), None
        elif isinstance(event, yaml.ScalarEvent):
            count, anchor = 1 + len(event.value), event.anchor
        else:
            continue
        if anchor:
            sizes[anchor] = count
        stack[-1][0] += count
        if stack[-1][0] > MAX_EXPANDED:
            raise InputRefused(f"{what} expands to more than {MAX_EXPANDED} characters "
                               f"(YAML aliases)")


def parse(raw: bytes, what: str) -> Any:
    """Shape-check, then load RAW (UTF-8 YAML) with the safe loader; yaml.YAMLError on syntax."""
    check_shape(raw, what)
    return yaml.load(raw, Loader=_Loader)


def load_file(path: Path, max_bytes: int) -> Any:
    """read_regular + parse, naming the file in every refusal."""
    return parse(read_regular(path, max_bytes), path.name)
