"""The sweep's turn lock: workers sharing a directory take turns, and a stuck holder is said."""

from __future__ import annotations

import logging

from taskdir import TaskDirectory
from taskdir.locks import SWEEP_LOCK

log = logging.getLogger("sweeper")
TURNS_BEFORE_SAYING = 3  # sweep passes without the turn lock before it is reported


class Turns:
    """Counts the passes another holder of the turn lock cost us."""

    def __init__(self, tasks: TaskDirectory) -> None:
        self.tasks = tasks
        self.missed = 0

    def note(self, mine: bool) -> None:
        """A turn lock held through several intervals is said once (a stuck or hostile
        holder stalls file decisions and completions through the tooling)."""
        self.missed = 0 if mine else self.missed + 1
        if self.missed == TURNS_BEFORE_SAYING:
            log.warning("sweep_turn_held", extra={
                "lock_file": str(self.tasks.root / ".locks" / SWEEP_LOCK),
                "passes_missed": self.missed})
