"""The agents' CLI finishing its own task file without PyYAML or the directory's index: the
same move (`taskdir.moves`), the tooling's lock and the atomic 0600 write the worker's
`TaskWriter.set_status` uses; what the lean reader or emitter is unsure of is left to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from safeio import block_dump, block_yaml
from safeio.regular import read_regular
from safeio.writing import write_private
from taskdir.locks import TaskLocks
from taskdir.moves import move
from taskdir.reading import MAX_TASK_FILE_BYTES


def finish(path: Path, status: str, note: str, output: str,
           by: Callable[[dict[str, Any]], str]) -> bool:
    """Give the file at PATH (in its task directory) its final STATUS, never over a final
    one, as `TaskDirectory.finish` would; BY names who did it from the document. False when
    unsure (nothing written: use the full path); errors as the full path's."""
    first = block_yaml.parse(read_regular(path, MAX_TASK_FILE_BYTES))
    if not isinstance(first, dict):
        return False
    with TaskLocks(path.parent).lock(str(first.get("id"))):
        document = block_yaml.parse(read_regular(path, MAX_TASK_FILE_BYTES))
        if not isinstance(document, dict):
            return False
        if not move(document, status, note, output=output, by=by(document),
                    unless_terminal=True):
            return True  # finished already: nothing to write
        data = block_dump.dump(document)
        if data is None or len(data) > MAX_TASK_FILE_BYTES:
            return False
        write_private(path, data, path.parent)
    return True
