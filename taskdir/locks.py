"""The task-queue tooling's per-task flocks, and the sweep's turn among this host's workers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from exceptions import ActivityRuntimeError
from safeio.writing import open_beneath
from taskdir.index import odd_entry

SWEEP_LOCK = ".temporal-build-worker-sweep.lock"  # a dot name: never a task id's lock
LOCK_PATIENCE = 0.2  # seconds a write waits for a held task lock before handing back its thread


class TaskLocked(ActivityRuntimeError):
    """The tooling's lock on a task file is held: try again later (no thread is held)."""

    def __init__(self, task_id: str, lock_path: Path) -> None:
        super().__init__(f"task {task_id} is locked by another process ({lock_path})")
        self.lock_path = lock_path


class TaskLocks:
    """Locks under `<root>/.locks/`, taken as the tooling takes them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextlib.contextmanager
    def lock(self, task_id: str) -> Iterator[None]:
        """The exclusive flock the task-queue server takes on `.locks/<id>.lock`, waited for
        at most LOCK_PATIENCE (then TaskLocked: the caller retries later without a thread).
        A `.locks` that is not a directory cannot lock anyone: we write unlocked, and say so."""
        if not self._usable():
            yield
            return
        name = re.sub(r"[^A-Za-z0-9_-]", "_", task_id)[:128]
        path = self.root / ".locks" / f"{name}.lock"
        fd = open_beneath(path, self.root, os.O_RDWR | os.O_CREAT)
        try:
            deadline = time.monotonic() + LOCK_PATIENCE
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TaskLocked(task_id, path) from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _usable(self) -> bool:
        locks = self.root / ".locks"
        try:
            info = os.stat(locks, follow_symlinks=False)
        except FileNotFoundError:
            return True  # made on first use
        except OSError:
            return True  # let open_beneath report it
        if stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode):
            return True  # a link is refused (fail closed) by open_beneath
        odd_entry(locks, "task files written without the tooling's lock")
        return False

    @contextlib.contextmanager
    def sweep_turn(self) -> Iterator[bool]:
        """True while this process holds the directory's sweep flock (False: another
        worker on this host is sweeping it now). A dead holder's flock goes with it."""
        if not self._usable():
            yield True  # no lock to take turns by: sweep (every action is idempotent)
            return
        fd = open_beneath(self.root / ".locks" / SWEEP_LOCK, self.root, os.O_RDWR | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def sweep_turn_stuck(self, patience: float = 3.0) -> bool:
        """True when the sweep's turn lock stays held for PATIENCE seconds (a pass over a few
        hundred builds takes well under that: a holder that long may be stuck, or not one of
        our workers at all)."""
        if not (self.root / ".locks" / SWEEP_LOCK).is_file():
            return False
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            with self.sweep_turn() as mine:
                if mine:
                    return False
            time.sleep(0.1)
        return True
