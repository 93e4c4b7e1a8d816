"""TaskDirectory: the one owner of the task directory, shared with the task-queue tooling.

Its jobs live in their own modules: finding files by id (`index`), the tooling's locks and
the sweep's turn (`locks`), who may decide a parked build (`decisions`) and writing files
(`writes`). The rules (TASK-QUEUE.md): every rewrite takes the tooling's lock, keeps keys we
do not own, keeps `parked`, and leaves the file 0600; several files claiming one id decide
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from taskdir.decisions import Decision, read_decision
from taskdir.documents import TaskSpec
from taskdir.index import TaskIndex
from taskdir.locks import TaskLocks
from taskdir.vocabulary import TERMINAL, TaskStyle
from taskdir.writes import TaskWriter


class TaskDirectory(TaskIndex):
    """The agents' task directory (`TASK_QUEUE_DIR`), with `archive/` and `dead-letters/`:
    lookups are its own (TaskIndex); locks and writes are handed to their owners."""

    def __init__(self, root: Path, style: TaskStyle | None = None,
                 approvers: frozenset[str] = frozenset(), watch: bool = False) -> None:
        super().__init__(root, watch)
        self.style = style or TaskStyle()
        self.approvers = approvers
        self.locks = TaskLocks(root)
        self.writer = TaskWriter(root, self.style, self, self.locks)

    def lock(self, task_id: str) -> AbstractContextManager[None]:
        return self.locks.lock(task_id)

    def sweep_turn(self) -> AbstractContextManager[bool]:
        return self.locks.sweep_turn()

    def sweep_turn_stuck(self, patience: float = 3.0) -> bool:
        return self.locks.sweep_turn_stuck(patience)

    def dispatch(self, spec: TaskSpec, token_b64: str, note: str | None = None) -> Path:
        return self.writer.dispatch(spec, token_b64, note)

    def update(self, task_id: str, change: Callable[[dict[str, Any]], bool],
               path: Path | None = None, include_archive: bool = False) -> bool:
        return self.writer.update(task_id, change, path, include_archive)

    def set_status(self, task_id: str, status: str, note: str, **how: Any) -> bool:
        """See TaskWriter.set_status (output, by, unless_terminal, path, include_archive)."""
        return self.writer.set_status(task_id, status, note, **how)

    def move_on(self, task_id: str, status: str, note: str, **how: Any) -> bool:
        """Move TASK_ID to STATUS unless it is finished: the one writer of our moves that may
        end a file, so a final status is written once and never over (output, by, path,
        include_archive as set_status). False when finished already (or not there)."""
        return self.writer.set_status(task_id, status, note, unless_terminal=True, **how)

    def finish(self, task_id: str, status: str, note: str, **how: Any) -> bool:
        """move_on to a final STATUS (one of TERMINAL) only: how our CLIs and sweeps end a
        file; a status that is not final is refused before anything is written."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a final status of a task file")
        return self.move_on(task_id, status, note, **how)

    def tighten(self, path: Path) -> bool:
        return self.writer.tighten(path)

    def loose_token_files(self) -> list[Path]:
        return self.writer.loose_token_files()

    def read_decision(self, task_id: str, *, credible_only: bool = True) -> Decision:
        """What TASK_ID's file decides (see `taskdir.decisions.read_decision`)."""
        return read_decision(self, self.approvers, task_id, credible_only=credible_only)
