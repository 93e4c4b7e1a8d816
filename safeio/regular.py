"""Reading a file an agent could have written: bounded, never through a link, never a FIFO.
Kept apart from the YAML loader so that the agents' CLI can read without importing PyYAML."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from exceptions import ActivityRuntimeError

MAX_DEPTH = 64  # levels of nesting in a document we did not write
MAX_NODES = 100_000  # nodes (scalars, collections), aliases expanded: what a load builds
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
