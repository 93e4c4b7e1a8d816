"""Writing task files as the tooling expects: under its lock, keeping what is not ours, 0600."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from exceptions import ActivityRuntimeError
from safeio.writing import FILE_MODE, write_private
from taskdir.documents import (
    MAX_TASK_FILE_BYTES,
    UNREADABLE,
    TaskSpec,
    dump,
    history_entry,
    load,
    utc_now,
)
from taskdir.index import TaskIndex
from taskdir.locks import TaskLocks
from taskdir.moves import move
from taskdir.names import file_name
from taskdir.vocabulary import TaskStyle

log = logging.getLogger("taskdir")


class TaskWriter:
    """Every write to the directory; each one under the tooling's `.locks/<id>.lock`."""

    def __init__(self, root: Path, style: TaskStyle, index: TaskIndex, locks: TaskLocks) -> None:
        self.root, self.style, self.index, self.locks = root, style, index, locks

    def dispatch(self, spec: TaskSpec, token_b64: str, note: str | None = None) -> Path:
        """Write (or rewrite, for a new attempt) the one live task file of SPEC; its path.

        A rewrite keeps what is not ours (foreign keys, `parked`, `created`, the history)
        and carries the current attempt's token.
        """
        with self.locks.lock(spec.task_id):
            now = utc_now()
            fresh = self.style.document(spec, token_b64, now)
            existing = self.index.find_named(spec.task_id)
            if existing is None:
                path, document = self.root / file_name(spec.task_id, now), fresh
            else:
                path = existing
                try:
                    document = _merge(load(existing), fresh,
                                      note or "re-dispatched with a fresh task token")
                except UNREADABLE:
                    document = fresh
            data = dump(document)
            if len(data) > MAX_TASK_FILE_BYTES:  # we must always be able to read it back
                raise ActivityRuntimeError(
                    f"task file for {spec.task_id} would be {len(data)} bytes, over the "
                    f"{MAX_TASK_FILE_BYTES}-byte limit of our own reader")
            write_private(path, data)
        return path

    def update(self, task_id: str, change: Callable[[dict[str, Any]], bool],
               path: Path | None = None, include_archive: bool = False) -> bool:
        """Locked load-change-write of TASK_ID's file; CHANGE returns False to write nothing.
        False when there is no such file."""
        with self.locks.lock(task_id):
            path = path or self.index.find(task_id, include_archive=include_archive)
            if path is None:
                return False
            document = load(path)
            if not change(document):
                return False
            write_private(path, dump(document), self.root)
        return True

    def set_status(self, task_id: str, status: str, note: str, *,
                   output: str | None = None, by: str | None = None,
                   unless_terminal: bool = False, path: Path | None = None,
                   include_archive: bool = False) -> bool:
        """Move TASK_ID to STATUS with a history entry (and a result when OUTPUT or a
        terminal status is given). With UNLESS_TERMINAL a finished task is left alone."""

        def change(document: dict[str, Any]) -> bool:
            return move(document, status, note, output=output, by=by,
                        unless_terminal=unless_terminal)

        return self.update(task_id, change, path, include_archive)

    def loose_token_files(self) -> list[Path]:
        """Our token-bearing files (live or archived, terminal too) that others can read;
        an `archive` that is a link is never followed."""
        loose = []
        for place in (self.root, self.root / "archive"):
            if place != self.root and not _real_directory(place):
                continue
            suspects = []
            for path in place.glob("*.yml"):
                try:
                    info = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue
                if (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
                        and stat.S_IMODE(info.st_mode) & 0o077):
                    suspects.append(path)
            loose += [path for path, header in self.index.headers_within(suspects)
                      if header is not None and header.stage]
        return loose

    def tighten(self, path: Path) -> bool:
        """A token-bearing file someone else rewrote with a looser mode is 0600 again."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                    or stat.S_IMODE(info.st_mode) == FILE_MODE):
                return False
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        log.warning("task_file_tightened", extra={"task_file": str(path)})
        return True


def _real_directory(path: Path) -> bool:
    """PATH is a directory itself, not a link to one (nor a file where one is expected)."""
    try:
        return stat.S_ISDIR(os.stat(path, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _timestamp(value: object) -> datetime | None:
    """A `created` we wrote earlier (a timestamp, or an ISO string from older versions)."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _merge(old: dict[str, Any], fresh: dict[str, Any], note: str) -> dict[str, Any]:
    """FRESH with what OLD holds that is not ours to reset: foreign keys (top level and in the
    payload), `created`, the history, and a `parked` status."""
    document = dict(fresh)
    document["created"] = _timestamp(old.get("created")) or fresh["created"]
    old_payload = old.get("payload") if isinstance(old.get("payload"), dict) else {}
    document["payload"] = {**{k: v for k, v in old_payload.items()
                              if k not in fresh["payload"]}, **fresh["payload"]}
    if old.get("status") == "parked":
        document["status"] = "parked"  # the operator's; `parked_from` is kept below
    history = old.get("history")
    document["history"] = [*(history if isinstance(history, list) else []),
                           history_entry(document["status"], note)]
    document.update({key: value for key, value in old.items() if key not in fresh})
    return document
