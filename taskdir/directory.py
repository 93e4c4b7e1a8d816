"""TaskDirectory: the one owner of the task directory's files, rules and caches.

The directory is shared with the task-queue tooling (TASK-QUEUE.md): every rewrite of a file
takes the tooling's `.locks/<id>.lock` flock, keeps keys we do not own, keeps `parked`, and
leaves the file 0600; lookups by id are cached per file version; several files claiming one
id decide nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from exceptions import ActivityRuntimeError
from safeio.writing import FILE_MODE, open_beneath, write_private
from taskdir.documents import (
    MAX_TASK_FILE_BYTES,
    SOURCE_AGENT,
    TaskSpec,
    dump,
    file_name,
    history_entry,
    load,
    utc_now,
)
from taskdir.vocabulary import DECISIONS, TERMINAL, TaskStyle

log = logging.getLogger("taskdir")
MAX_CACHED_HEADERS = 50_000
SWEEP_LOCK = ".temporal-build-worker-sweep.lock"  # a dot name: never a task id's lock
RECENT_CHANGE_NS = 2_000_000_000  # a directory changed this recently may hide a new name
MTIME_TICK_NS = 50_000_000  # coarser than any file system's mtime tick we meet
_NAME = re.compile(r"^\d{8}-\d{6}-(.{1,8})\.yml$")  # group: the id's first 8 chars
_UNREADABLE = (OSError, ValueError, yaml.YAMLError)


LOCK_PATIENCE = 0.2  # seconds a write waits for a held task lock before handing back its thread


class DuplicateTaskId(ActivityRuntimeError, ValueError):
    """Several task files claim one id: none of them is trusted."""


@dataclass(frozen=True)
class Header:
    """What lookups need from a task file, parsed once per file version."""

    id: str
    status: str | None
    by: str | None  # actor of the history entry that set `status`
    note: str | None  # its note
    stage: bool = False  # one of our stage files: written by us, holding a task token


@dataclass(frozen=True)
class Decision:
    """An originating task's status and who set it, why (the history entry of that move)."""

    status: str | None
    by: str | None = None
    reason: str | None = None

    def counts(self, approvers: frozenset[str]) -> bool:
        """Credible as an operator's decision: anyone when APPROVERS is empty (upstream),
        else only one of them (an agent editing the file is not)."""
        return not approvers or self.by in approvers


class _DirIndex:
    """File names of one directory grouped by the 8-char id prefix, refreshed on mtime change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[int, dict[str | None, list[str]]]] = {}

    def candidates(self, directory: Path, task_id: str) -> list[Path]:
        try:
            info = os.stat(directory, follow_symlinks=False)
        except OSError:
            return []
        if not stat.S_ISDIR(info.st_mode):
            odd_entry(directory, "looked at as empty")
            return []
        mtime = info.st_mtime_ns
        with self._lock:
            cached = self._cache.get(directory)
            # mtime ticks are coarse: a file made within the tick of the last scan leaves the
            # mtime as it was, so a miss rescans while the directory changed only just now.
            recent = time.time_ns() - mtime < RECENT_CHANGE_NS
            if cached is None or cached[0] != mtime or (
                    recent and task_id[:8] not in cached[1]):
                cached = (mtime, self._scan(directory))
                self._cache[directory] = cached
        groups = cached[1]
        names = groups.get(task_id[:8], []) + groups.get(None, [])
        return [directory / name for name in names]

    def others(self, directory: Path, task_id: str) -> list[Path]:
        """Files whose name says they hold another id (a fallback: names can lie)."""
        with self._lock:
            cached = self._cache.get(directory)
        if cached is None:
            return []
        return [directory / name for prefix, names in cached[1].items()
                if prefix not in (task_id[:8], None) for name in names]

    @staticmethod
    def _scan(directory: Path) -> dict[str | None, list[str]]:
        groups: dict[str | None, list[str]] = {}
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(".yml"):
                    match = _NAME.match(entry.name)
                    groups.setdefault(match.group(1) if match else None, []).append(entry.name)
        return groups


_ODD_SAID: set[Path] = set()


def odd_entry(path: Path, effect: str) -> None:
    """Say once per process that a bookkeeping directory is not a directory, and what we do."""
    if path not in _ODD_SAID:
        _ODD_SAID.add(path)
        log.warning("task_dir_entry_not_a_directory", extra={"path": str(path),
                                                              "effect": effect})


class TaskLocked(ActivityRuntimeError):
    """The tooling's lock on a task file is held: try again later (no thread is held)."""

    def __init__(self, task_id: str, lock_path: Path) -> None:
        super().__init__(f"task {task_id} is locked by another process ({lock_path})")
        self.lock_path = lock_path


class _HeaderCache:
    """Header per task-file version, junk remembered as None; least recently used evicted
    first; thread-safe (activities and the sweeper read from worker threads)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[Path, tuple[tuple[int, int, int], Header | None]] = (
            OrderedDict())
        self._lock = threading.Lock()

    def get(self, path: Path, version: tuple[int, int, int]) -> tuple[bool, Header | None]:
        """(known, header): a known None is a file version that is not a task (junk)."""
        with self._lock:
            cached = self._entries.get(path)
            if cached is None or cached[0] != version:
                return False, None
            self._entries.move_to_end(path)
            return True, cached[1]

    def put(self, path: Path, version: tuple[int, int, int], header: Header | None) -> None:
        with self._lock:
            self._entries[path] = (version, header)
            self._entries.move_to_end(path)
            while len(self._entries) > MAX_CACHED_HEADERS:
                self._entries.popitem(last=False)  # a re-parse is cheap, unbounded growth not

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries


def _mover(document: dict[str, Any], status: str | None) -> tuple[str | None, str | None]:
    """Actor and note of the newest history entry that set STATUS (who made the move, why)."""
    history = document.get("history")
    for entry in reversed(history if isinstance(history, list) else []):
        if isinstance(entry, dict) and entry.get("status") == status:
            return _line(entry.get("actor"), 200), _line(entry.get("note"), 2000)
    return None, None


def _line(value: object, limit: int) -> str | None:
    """One printable line (it becomes `decided_by` / `reason`), or None."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value or "")).strip()
    return text[:limit] or None


class TaskDirectory:
    """The agents' task directory (`TASK_QUEUE_DIR`), with `archive/` and `dead-letters/`."""

    def __init__(self, root: Path, style: TaskStyle | None = None,
                 approvers: frozenset[str] = frozenset()) -> None:
        self.root = root
        self.style = style or TaskStyle()
        self.approvers = approvers
        self._index = _DirIndex()
        self._headers = _HeaderCache()
        self._ids: dict[Path, tuple[int, int, dict[str, list[Path]]]] = {}  # mtime, built
        self._ids_lock = threading.Lock()

    # -- lookups ---------------------------------------------------------------------------

    def find(self, task_id: str, *, include_archive: bool = True) -> Path | None:
        """The one live (or archived) file whose `id` is TASK_ID, None if there is none.

        Files named after the id are looked at first; only when none holds it is every other
        file read (headers cached per version, so a repeated miss costs a stat per file).
        Raises DuplicateTaskId when several files claim the id: first-match-wins would let a
        planted copy decide.
        """
        places = [self.root, self.root / "archive"] if include_archive else [self.root]
        return self._find_in(places, task_id)

    def find_dead_letter(self, task_id: str) -> Path | None:
        """TASK_ID's file in `dead-letters/`, where the dispatcher moves what it gave up on."""
        return self._find_in([self.root / "dead-letters"], task_id)

    def _find_in(self, places: list[Path], task_id: str) -> Path | None:
        for lookup in (self._index.candidates, self._index.others):
            matches = [path for place in places for path in lookup(place, task_id)
                       if (header := self.header(path)) is not None and header.id == task_id]
            if len(matches) > 1:
                names = ", ".join(sorted(str(path.relative_to(self.root)) for path in matches))
                raise DuplicateTaskId(f"{len(matches)} task files claim id {task_id}: {names}")
            if matches:
                return matches[0]
        return None

    def header(self, path: Path) -> Header | None:
        """Header of a task file, parsed once per version (inode, mtime, size); None if it is
        not a readable task file (remembered too, so junk is not re-parsed on every miss)."""
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        version = (info.st_ino, info.st_mtime_ns, info.st_size)
        known, cached = self._headers.get(path, version)
        if known:
            return cached
        try:
            document = load(path)
        except _UNREADABLE:
            header = None
        else:
            raw = document.get("status")
            status = str(raw) if raw is not None else None
            payload = document.get("payload")
            stage = (document.get("source_agent") == SOURCE_AGENT and isinstance(payload, dict)
                     and isinstance(payload.get("task_token"), str))
            header = Header(str(document.get("id")), status, *_mover(document, status), stage)
        self._headers.put(path, version, header)
        return header

    def read_status(self, task_id: str) -> str | None:
        """The `status` of TASK_ID, or None when no single readable file has that id."""
        return self.read_decision(task_id, credible_only=False).status

    def read_decision(self, task_id: str, *, credible_only: bool = True) -> Decision:
        """Status of TASK_ID with who set it and why; with `approvers`, a deciding status set
        by anyone else reads as no status. Duplicates never decide. Both are reported."""
        try:
            path = self.find(task_id)
        except DuplicateTaskId as err:
            log.warning("duplicate_task_id", extra={"task_id": task_id,
                                                    "error": str(err)[:500]})
            return Decision(None)
        header = self.header(path) if path is not None else None
        if header is None:
            return Decision(None)
        decision = Decision(header.status, header.by, header.note)
        if credible_only and path is not None:  # deciding: no copy under any other name
            others = self._claimants_elsewhere(task_id, path)
            if others:  # a copy planted under another name decides nothing either
                names = ", ".join(sorted(str(p.relative_to(self.root)) for p in [path, *others]))
                log.warning("duplicate_task_id", extra={
                    "task_id": task_id, "error": f"{len(others) + 1} task files claim id "
                                                 f"{task_id}: {names}"[:500]})
                return Decision(None)
        if not credible_only or decision.counts(self.approvers):
            return decision
        if decision.status in DECISIONS:
            log.warning("file_decision_ignored", extra={
                "task_id": task_id, "status": decision.status, "actor": decision.by,
                "reason": "not set by one of FILE_APPROVERS"})
        return Decision(None)

    def _claimants_elsewhere(self, task_id: str, found: Path) -> list[Path]:
        """Files besides FOUND, under any name, whose `id` is TASK_ID: a copy planted under
        another name never decides either. The id map is rebuilt when a directory changes."""
        return [path for place in (self.root, self.root / "archive")
                for path in self._ids_in(place).get(task_id, []) if path != found]

    def _ids_in(self, place: Path) -> dict[str, list[Path]]:
        try:
            info = os.stat(place, follow_symlinks=False)
        except OSError:
            return {}
        if not stat.S_ISDIR(info.st_mode):
            return {}
        with self._ids_lock:
            cached = self._ids.get(place)
            # Built well after the directory's last change: a later change moves its mtime
            # (a map built within the same coarse mtime tick is not trusted).
            if cached is not None and cached[0] == info.st_mtime_ns and \
                    cached[1] - info.st_mtime_ns > MTIME_TICK_NS:
                return cached[2]
        built = time.time_ns()
        mapping: dict[str, list[Path]] = {}
        for path in place.glob("*.yml"):
            header = self.header(path)
            if header is not None:
                mapping.setdefault(header.id, []).append(path)
        with self._ids_lock:
            self._ids[place] = (info.st_mtime_ns, built, mapping)
        return mapping

    def unreadable_named(self, task_id: str) -> list[Path]:
        """Files named for TASK_ID that cannot be read as a task (too large, not YAML): the
        stage's file may be there, so it must not be taken for missing."""
        return [path for path in self._index.candidates(self.root, task_id)
                if path.name.endswith(f"-{task_id[:8]}.yml") and self.header(path) is None]

    # -- writes (every one under the tooling's lock) ----------------------------------------

    @contextlib.contextmanager
    def lock(self, task_id: str) -> Iterator[None]:
        """The exclusive flock the task-queue server takes on `.locks/<id>.lock`, waited for
        at most LOCK_PATIENCE (then TaskLocked: the caller retries later without a thread).
        A `.locks` that is not a directory cannot lock anyone: we write unlocked, and say so."""
        if not self._locks_usable():
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

    def _locks_usable(self) -> bool:
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

    @contextlib.contextmanager
    def sweep_turn(self) -> Iterator[bool]:
        """True while this process holds the directory's sweep flock (False: another
        worker on this host is sweeping it now). A dead holder's flock goes with it."""
        if not self._locks_usable():
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

    def dispatch(self, spec: TaskSpec, token_b64: str, note: str | None = None) -> Path:
        """Write (or rewrite, for a new attempt) the one live task file of SPEC; its path.

        A rewrite keeps what is not ours (foreign keys, `parked`, `created`, the history)
        and carries the current attempt's token.
        """
        with self.lock(spec.task_id):
            now = utc_now()
            fresh = self.style.document(spec, token_b64, now)
            existing = self.find(spec.task_id, include_archive=False)
            if existing is None:
                path, document = self.root / file_name(spec.task_id, now), fresh
            else:
                path = existing
                try:
                    document = _merge(load(existing), fresh,
                                      note or "re-dispatched with a fresh task token")
                except _UNREADABLE:
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
        with self.lock(task_id):
            path = path or self.find(task_id, include_archive=include_archive)
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
            if unless_terminal and document.get("status") in TERMINAL:
                return False
            now = utc_now()
            document["status"] = status
            if status in TERMINAL or output is not None:
                document["result"] = {"output": output, "completed_by": by or SOURCE_AGENT,
                                      "completed_at": now}
            history = document.get("history")
            document["history"] = [*(history if isinstance(history, list) else []),
                                   history_entry(status, note, moment=now)]
            return True

        return self.update(task_id, change, path, include_archive)

    def stage_files(self) -> list[tuple[Path, Header]]:
        """Our stage files in the directory (not archive/), with their headers."""
        found = []
        for path in sorted(self.root.glob("*.yml")):
            header = self.header(path)
            if header is not None and header.stage:
                found.append((path, header))
        return found

    def loose_token_files(self) -> list[Path]:
        """Our token-bearing files (live or archived, terminal too) that others can read."""
        loose = []
        for place in (self.root, self.root / "archive"):
            for path in place.glob("*.yml"):
                try:
                    info = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue
                if (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
                        and stat.S_IMODE(info.st_mode) & 0o077):
                    header = self.header(path)
                    if header is not None and header.stage:
                        loose.append(path)
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
