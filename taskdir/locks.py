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
        A `.locks` (or a lock file) of the wrong shape cannot lock anyone and is never
        followed: we write unlocked, and say so."""
        name = re.sub(r"[^A-Za-z0-9_-]", "_", task_id)[:128]
        path = self.root / ".locks" / f"{name}.lock"
        if self.trouble(path) is not None:
            yield
            return
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

    def trouble(self, lock_file: Path | None = None) -> str | None:
        """Why locks cannot be taken as the tooling takes them (None: they can): `.locks` is
        a link or not a directory, or LOCK_FILE (default: the sweep's turn lock) is a link,
        a directory or anything but a regular file. Said once per entry in the log."""
        locks = self.root / ".locks"
        lock_file = lock_file or locks / SWEEP_LOCK
        for path, want_dir, effect in (
                (locks, True, "task files written without the tooling's lock; sweeps not "
                              "taken in turns"),
                (lock_file, False, "written without this lock" if lock_file.name != SWEEP_LOCK
                 else "sweeps not taken in turns (each action is idempotent)")):
            shape = _wrong_shape(path, want_dir)
            if shape is not None:
                from taskdir.index import odd_entry  # its logging, only when it has to say

                odd_entry(path, effect, shape)
                return f"{path} is {shape}: {effect}; it is not followed (replace it)"
        return None

    @contextlib.contextmanager
    def sweep_turn(self) -> Iterator[bool]:
        """True while this process holds the directory's sweep flock (False: another
        worker on this host is sweeping it now). A dead holder's flock goes with it."""
        if self.trouble() is not None:
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
        lock_file = self.root / ".locks" / SWEEP_LOCK
        if self.trouble() is not None or not lock_file.exists():
            return False
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            with self.sweep_turn() as mine:
                if mine:
                    return False
            time.sleep(0.1)
        return True


def _wrong_shape(path: Path, want_dir: bool) -> str | None:
    """What PATH is when it is not what we expect there (None: as expected, or missing: it is
    made on first use; an unreadable parent is left to open_beneath to refuse)."""
    try:
        mode = os.stat(path, follow_symlinks=False).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        return "a symlink"
    if want_dir and not stat.S_ISDIR(mode):
        return "not a directory"
    if not want_dir and not stat.S_ISREG(mode):
        return "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    return None
