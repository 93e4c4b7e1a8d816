"""Finding task files by id: a name index per directory, headers cached per file version."""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contract import token_text
from exceptions import ActivityRuntimeError
from taskdir.documents import SOURCE_AGENT, UNREADABLE, load

if TYPE_CHECKING:
    from taskdir.watch import DirectoryWatch, Groups

log = logging.getLogger("taskdir")
MAX_CACHED_HEADERS = 50_000
RECENT_CHANGE_NS = 2_000_000_000  # a directory changed this recently may hide a new name
MTIME_TICK_NS = 50_000_000  # coarser than any file system's mtime tick we meet
_NAME = re.compile(r"^\d{8}-\d{6}-(.{1,8})\.yml$")  # group: the id's first 8 chars


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


def mover(document: dict, status: str | None) -> tuple[str | None, str | None]:
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


_ODD_SAID: set[Path] = set()


def odd_entry(path: Path, effect: str) -> None:
    """Say once per process that a bookkeeping directory is not a directory, and what we do."""
    if path not in _ODD_SAID:
        _ODD_SAID.add(path)
        log.warning("task_dir_entry_not_a_directory", extra={"path": str(path),
                                                              "effect": effect})


class NameIndex:
    """File names of one directory grouped by the 8-char id prefix: refreshed on mtime change,
    or (WATCH, a long-lived process on Linux) kept current from the directory's events."""

    def __init__(self, watch: bool = False) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[int, Groups]] = {}  # mtime (-1: watched), names
        self._watch = _open_watch() if watch else None

    @property
    def watching(self) -> bool:
        return self._watch is not None

    def candidates(self, directory: Path, task_id: str) -> list[Path]:
        try:
            info = os.stat(directory, follow_symlinks=False)
        except OSError:
            return []
        if not stat.S_ISDIR(info.st_mode):
            odd_entry(directory, "looked at as empty")
            return []
        with self._lock:
            groups = self._groups(directory, info, task_id)
            names = [*groups.get(task_id[:8], ()), *groups.get(None, ())]
        return [directory / name for name in names]

    def _groups(self, directory: Path, info: os.stat_result, task_id: str) -> Groups:
        if self._watch is not None:
            watched = self._watch.groups(directory, info.st_ino, self._scan, id_prefix)
            if watched is not None:
                self._cache[directory] = (-1, watched)
                return watched
        mtime = info.st_mtime_ns
        cached = self._cache.get(directory)
        # mtime ticks are coarse: a file made within the tick of the last scan leaves the
        # mtime as it was, so a miss rescans while the directory changed only just now.
        recent = time.time_ns() - mtime < RECENT_CHANGE_NS
        if cached is None or cached[0] != mtime or (recent and task_id[:8] not in cached[1]):
            cached = (mtime, self._scan(directory))
            self._cache[directory] = cached
        return cached[1]

    def others(self, directory: Path, task_id: str) -> list[Path]:
        """Files whose name says they hold another id (a fallback: names can lie)."""
        with self._lock:
            cached = self._cache.get(directory)
            if cached is None:
                return []
            return [directory / name for prefix, names in cached[1].items()
                    if prefix not in (task_id[:8], None) for name in names]

    @staticmethod
    def _scan(directory: Path) -> Groups:
        groups: Groups = {}
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".yml"):
                    groups.setdefault(id_prefix(name), {})[name] = None
        return groups


def _open_watch() -> DirectoryWatch | None:
    """The inotify watch for a long-lived index (imported only here: the agents' CLI reads task
    files too and never watches), None where it cannot be had."""
    try:
        from taskdir.watch import DirectoryWatch

        return DirectoryWatch.open()
    except OSError as err:  # no file descriptor left even to import it
        log.info("task_index_lists_on_change", extra={"reason": err.strerror or str(err)})
        return None


def id_prefix(name: str) -> str | None:
    """The id prefix a task file's name carries (None: not named as the tooling names files);
    the common full-length name is sliced, not matched (a busy directory is rescanned often)."""
    if len(name) == 28 and name[8] == name[15] == "-" and name[:8].isdecimal() \
            and name[9:15].isdecimal() and "\n" not in name:
        return name[16:24]
    match = _NAME.match(name)
    return match.group(1) if match else None


class HeaderCache:
    """Header per task-file version, junk remembered as None; least recently used evicted
    first; thread-safe (activities and the sweeper read from worker threads). Keyed by the
    path's text: a Path object kept per file would cost a parked build ~2 kB more."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[tuple[int, int, int], Header | None]] = (
            OrderedDict())
        self._lock = threading.Lock()

    def get(self, path: Path, version: tuple[int, int, int]) -> tuple[bool, Header | None]:
        """(known, header): a known None is a file version that is not a task (junk)."""
        key = str(path)
        with self._lock:
            cached = self._entries.get(key)
            if cached is None or cached[0] != version:
                return False, None
            self._entries.move_to_end(key)
            return True, cached[1]

    def put(self, path: Path, version: tuple[int, int, int], header: Header | None) -> None:
        key = str(path)
        with self._lock:
            self._entries[key] = (version, header)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_CACHED_HEADERS:
                self._entries.popitem(last=False)  # a re-parse is cheap, unbounded growth not

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return str(path) in self._entries


class TaskIndex:
    """Which file holds a task id, in the directory, `archive/` or `dead-letters/`."""

    def __init__(self, root: Path, watch: bool = False) -> None:
        self.root = root
        self._names = NameIndex(watch)
        self._headers = HeaderCache()
        self._ids: dict[Path, tuple[int, int, dict[str, list[str]]]] = {}  # mtime, built, names
        self._ids_lock = threading.Lock()

    def find(self, task_id: str, *, include_archive: bool = True) -> Path | None:
        """The one live (or archived) file whose `id` is TASK_ID, None if there is none.

        Files named after the id are looked at first; only when none holds it is every other
        file read (headers cached per version, so a repeated miss costs a stat per file).
        Raises DuplicateTaskId when several files claim the id: first-match-wins would let a
        planted copy decide.
        """
        places = [self.root, self.root / "archive"] if include_archive else [self.root]
        return self._find_in(places, task_id)

    def find_named(self, task_id: str) -> Path | None:
        """The live file named for TASK_ID, as we name the files we write: the one a dispatch
        may rewrite. A file under another name claiming the id is not ours to adopt (a
        decision then finds it as a second claimant and trusts neither); a new id costs no
        read of every other file."""
        return self._find_in([self.root], task_id, fallback=False)

    def find_dead_letter(self, task_id: str) -> Path | None:
        """TASK_ID's file in `dead-letters/`, where the dispatcher moves what it gave up on."""
        return self._find_in([self.root / "dead-letters"], task_id)

    def _find_in(self, places: list[Path], task_id: str, fallback: bool = True) -> Path | None:
        lookups = (self._names.candidates, self._names.others)
        for lookup in lookups if fallback else lookups[:1]:
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
        except UNREADABLE:
            header = None
        else:
            raw = document.get("status")
            status = str(raw) if raw is not None else None
            stage = (document.get("source_agent") == SOURCE_AGENT
                     and token_text(document) is not None)
            header = Header(str(document.get("id")), status, *mover(document, status), stage)
        self._headers.put(path, version, header)
        return header

    def claimants_elsewhere(self, task_id: str, found: Path) -> list[Path]:
        """Files besides FOUND, under any name, whose `id` is TASK_ID: a copy planted under
        another name never decides either. The id map is rebuilt when a directory changes."""
        return [path for place in (self.root, self.root / "archive")
                for name in self._ids_in(place).get(task_id, [])
                if (path := place / name) != found]

    def _ids_in(self, place: Path) -> dict[str, list[str]]:
        """Id → names of the files in PLACE claiming it."""
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
        mapping: dict[str, list[str]] = {}
        for path in place.glob("*.yml"):
            header = self.header(path)
            if header is not None:
                mapping.setdefault(header.id, []).append(path.name)
        with self._ids_lock:
            self._ids[place] = (info.st_mtime_ns, built, mapping)
        return mapping

    def unreadable_named(self, task_id: str) -> list[Path]:
        """Files named for TASK_ID that cannot be read as a task (too large, not YAML): the
        stage's file may be there, so it must not be taken for missing."""
        return [path for path in self._names.candidates(self.root, task_id)
                if path.name.endswith(f"-{task_id[:8]}.yml") and self.header(path) is None]

    def stage_files(self) -> list[tuple[Path, Header]]:
        """Our stage files in the directory (not archive/), with their headers."""
        found = []
        for path in sorted(self.root.glob("*.yml")):
            header = self.header(path)
            if header is not None and header.stage:
                found.append((path, header))
        return found
