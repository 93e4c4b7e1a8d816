"""Finding task files by id: a name index per directory, headers cached per file version."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from contract import token_text
from exceptions import ActivityRuntimeError
from safeio import untrusted_yaml
from taskdir.documents import MAX_TASK_FILE_BYTES, SOURCE_AGENT, UNREADABLE
from taskdir.names import id_prefix
from taskdir.vocabulary import DECISIONS

if TYPE_CHECKING:
    from taskdir.watch import DirectoryWatch, Groups

log = logging.getLogger("taskdir")
MAX_CACHED_HEADERS = 50_000  # file versions (and distinct contents) remembered
MAX_CACHED_BYTES = 32 * 1024 * 1024  # what those entries may retain, all told
MAX_ID_CHARS, MAX_STATUS_CHARS = 128, 64  # longer ids: not a task we could ever look up
MAX_BY_CHARS, MAX_NOTE_CHARS = 200, 2000  # the deciding move's actor and note, cut
_ENTRY_OVERHEAD = 240  # bytes of dict slot, tuple and ints around each cached entry
# What one file can make the cache keep (its inode's entry and its content's summary, every
# character 4 bytes wide), whatever the file holds or however many links name it.
MAX_RETAINED_PER_FILE = 2 * _ENTRY_OVERHEAD + 4 * 80 + 4 * (
    MAX_ID_CHARS + MAX_STATUS_CHARS + MAX_BY_CHARS + MAX_NOTE_CHARS)
LOOKUP_NODES = 300_000  # YAML nodes one lookup may parse (~3 s on a busy 2-core machine)
LOOKUP_BYTES = 64 * 1024 * 1024  # bytes one lookup may read to recognise changed files
_PARKS = frozenset({"input-required", "pending-approval"})  # our awaiting_decision moves
RECENT_CHANGE_NS = 2_000_000_000  # a directory changed this recently may hide a new name
MTIME_TICK_NS = 50_000_000  # coarser than any file system's mtime tick we meet


class DuplicateTaskId(ActivityRuntimeError, ValueError):
    """Several task files claim one id: none of them is trusted."""


class LookupIncomplete(ActivityRuntimeError):
    """A lookup spent its read budget before it could answer: what it parsed is remembered,
    so the next one goes on; "not found" is never claimed meanwhile."""


@dataclass
class ReadBudget:
    """What one lookup may spend on files it has not seen in this version: links, touches or
    counts of planted files cannot multiply the time it takes."""

    nodes: int = field(default_factory=lambda: LOOKUP_NODES)
    bytes: int = field(default_factory=lambda: LOOKUP_BYTES)

    def read(self, size: int, path: Path) -> None:
        if size > self.bytes:
            raise LookupIncomplete(f"lookup stopped at {path.name}: its budget of bytes of "
                                   f"changed files to read is spent")
        self.bytes -= size


@dataclass(frozen=True, slots=True)
class Header:
    """What lookups need from a task file, parsed once per content: a bounded summary (each
    field capped), never the file's text."""

    id: str
    status: str | None
    by: str | None  # actor of the history entry that set `status`
    note: str | None  # its note
    stage: bool = False  # one of our stage files: written by us, holding a task token


def mover(document: dict, status: object, *,
          decision: bool = True) -> tuple[str | None, str | None]:
    """Actor and note of the newest history entry that set STATUS (who made the move, why).
    On an originating task (DECISION) a deciding status counts only when set after our
    newest park (`input-required` / `pending-approval`, written when the build parked): an
    approval from before it (an earlier build of the same task id), or with no park entry at
    all, names nobody. A stage file (not DECISION) has no park: its newest move counts."""
    history = document.get("history")
    entries = [entry for entry in (history if isinstance(history, list) else [])
               if isinstance(entry, dict)]
    for at in range(len(entries) - 1, -1, -1):
        entry = entries[at]
        if entry.get("status") == status:
            if decision and status in DECISIONS and not any(map(_parks, entries[:at])):
                return None, None
            return _line(entry.get("actor"), MAX_BY_CHARS), _line(entry.get("note"),
                                                                  MAX_NOTE_CHARS)
        if decision and _parks(entry):
            break
    return None, None


def _parks(entry: dict) -> bool:
    """ENTRY is ours, parking the build for an operator's decision."""
    return entry.get("actor") == SOURCE_AGENT and entry.get("status") in _PARKS


def _line(value: object, limit: int) -> str | None:
    """One printable line (it becomes `decided_by` / `reason`), or None."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value or "")).strip()
    return text[:limit] or None


_SAID: set[tuple[str, str]] = set()


def said_once(event: str, subject: str, detail: str) -> None:
    """Log EVENT about SUBJECT once per process (a hostile file must not flood the log)."""
    if (event, subject) not in _SAID:
        _SAID.add((event, subject))
        log.warning(event, extra={"subject": subject, "detail": detail[:300]})


def odd_entry(path: Path, effect: str, shape: str = "not a directory") -> None:
    """Say once per process that a bookkeeping entry has the wrong shape, and what we do."""
    if ("odd", str(path)) not in _SAID:
        _SAID.add(("odd", str(path)))
        log.warning("task_dir_entry_not_a_directory", extra={
            "path": str(path), "shape": shape, "effect": effect})


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
            odd_entry(directory, "looked at as empty (never followed)",
                      "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory")
            return []
        with self._lock:
            groups = self._groups(directory, info, task_id)
            names = list(groups.get(task_id[:8], ()))
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
        """Files whose name says they hold another id, or is not a task file's name at all (a
        fallback: names can lie; v0.5 finds a task by its `id` whatever the file's name)."""
        with self._lock:
            cached = self._cache.get(directory)
            if cached is None:
                return []
            return [directory / name for prefix, names in cached[1].items()
                    if prefix != task_id[:8] for name in names]

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



_Version = tuple[int, int, int]  # size, mtime and ctime (ns) of one inode
_Digest = bytes  # 16 bytes of BLAKE2b over a file's content


def _retained(value: object) -> int:
    """Bytes an entry keeps alive (the Header's strings are its only variable part)."""
    if isinstance(value, Header):
        return _ENTRY_OVERHEAD + sum(sys.getsizeof(text) for text in
                                     (value.id, value.status, value.by, value.note)
                                     if text is not None)
    return _ENTRY_OVERHEAD


class HeaderCache:
    """Two bounded maps, least recently used evicted first, thread-safe (activities and the
    sweeper read from worker threads): an inode's version (device, inode, size, mtime and
    ctime: a writer can set the mtime back, never the ctime, so a rewrite of the same size or
    a reused inode number is never taken for the file cached before) to its content digest,
    and a digest to its Header (None: junk). Hard links share an inode and copies a digest; a
    `touch` or a new link costs a read and a hash, never a second parse."""

    def __init__(self) -> None:
        self._inodes: OrderedDict[tuple[int, int], tuple[_Version, _Digest]] = OrderedDict()
        self._contents: OrderedDict[_Digest, Header | None] = OrderedDict()
        self._lock = threading.Lock()
        self.retained = 0  # bytes the entries keep alive, by their own accounting

    def digest_of(self, inode: tuple[int, int], version: _Version) -> _Digest | None:
        """The content digest last seen for INODE at VERSION (None: not this version)."""
        with self._lock:
            cached = self._inodes.get(inode)
            if cached is None or cached[0] != version:
                return None
            self._inodes.move_to_end(inode)
            return cached[1]

    def get(self, digest: _Digest) -> tuple[bool, Header | None]:
        """(known, header): a known None is content that is not a task (junk)."""
        with self._lock:
            if digest not in self._contents:
                return False, None
            self._contents.move_to_end(digest)
            return True, self._contents[digest]

    def put(self, inode: tuple[int, int], version: _Version, digest: _Digest,
            header: Header | None) -> None:
        with self._lock:
            if inode not in self._inodes:
                self.retained += _ENTRY_OVERHEAD
            self._inodes[inode] = (version, digest)
            self._inodes.move_to_end(inode)
            if digest not in self._contents:
                self.retained += _retained(header)
            self._contents[digest] = header
            self._contents.move_to_end(digest)
            self._evict()

    def _evict(self) -> None:
        """Oldest first, until both maps are within count and bytes (a re-parse is cheap,
        unbounded growth not)."""
        while len(self._inodes) > MAX_CACHED_HEADERS or (
                self.retained > MAX_CACHED_BYTES and self._inodes):
            self._inodes.popitem(last=False)
            self.retained -= _ENTRY_OVERHEAD
        while len(self._contents) > MAX_CACHED_HEADERS or (
                self.retained > MAX_CACHED_BYTES and self._contents):
            self.retained -= _retained(self._contents.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._contents)


def read_header(raw: bytes, name: str, max_nodes: int) -> tuple[Header | None, int]:
    """The bounded summary of one task file's content (None when it is not a task we could
    look up: not a mapping, unreadable, an id longer than any task id) and the YAML nodes
    parsing it cost (a refusal: as many as its bytes could hold). TooManyNodes past
    MAX_NODES."""
    try:
        nodes = untrusted_yaml.check_shape(raw, name, max_nodes)
        document = untrusted_yaml.load_checked(raw)
    except untrusted_yaml.TooManyNodes:
        raise
    except (*UNREADABLE, UnicodeError):
        return None, min(max_nodes, len(raw) // 2)
    if not isinstance(document, dict):
        return None, nodes
    task_id = str(document.get("id"))
    if len(task_id) > MAX_ID_CHARS:
        return None, nodes
    raw_status = document.get("status")
    status = str(raw_status)[:MAX_STATUS_CHARS] if raw_status is not None else None
    stage = document.get("source_agent") == SOURCE_AGENT and token_text(document) is not None
    return Header(task_id, status, *mover(document, raw_status), stage), nodes


class TaskIndex:
    """Which file holds a task id, in the directory, `archive/` or `dead-letters/`."""

    def __init__(self, root: Path, watch: bool = False) -> None:
        self.root = root
        self._names = NameIndex(watch)
        self._headers = HeaderCache()
        self._ids: dict[Path, tuple[int, int, dict[str, list[str]]]] = {}  # mtime, built, names
        self._ids_lock = threading.Lock()

    def find(self, task_id: str, *, include_archive: bool = True,
             budget: ReadBudget | None = None) -> Path | None:
        """The one live (or archived) file whose `id` is TASK_ID, None if there is none.

        Files named after the id are looked at first; only when none holds it is every other
        file read (headers cached per version, so a repeated miss costs a stat per file).
        Raises DuplicateTaskId when several files claim the id: first-match-wins would let a
        planted copy decide; LookupIncomplete when BUDGET ran out first.
        """
        places = [self.root, self.root / "archive"] if include_archive else [self.root]
        return self._find_in(places, task_id, budget=budget)

    def find_named(self, task_id: str) -> Path | None:
        """The live file named for TASK_ID, as we name the files we write: the one a dispatch
        may rewrite. A file under another name claiming the id is not ours to adopt (a
        decision then finds it as a second claimant and trusts neither); a new id costs no
        read of every other file."""
        return self._find_in([self.root], task_id, fallback=False)

    def find_dead_letter(self, task_id: str) -> Path | None:
        """TASK_ID's file in `dead-letters/`, where the dispatcher moves what it gave up on."""
        return self._find_in([self.root / "dead-letters"], task_id)

    def _find_in(self, places: list[Path], task_id: str, fallback: bool = True,
                 budget: ReadBudget | None = None) -> Path | None:
        budget = budget or ReadBudget()
        lookups = (self._names.candidates, self._names.others)
        for lookup in lookups if fallback else lookups[:1]:
            matches = [path for place in places for path in lookup(place, task_id)
                       if (header := self.header(path, budget)) is not None
                       and header.id == task_id]
            if len(matches) > 1:
                names = ", ".join(sorted(str(path.relative_to(self.root)) for path in matches))
                raise DuplicateTaskId(f"{len(matches)} task files claim id {task_id}: {names}")
            if matches:
                return matches[0]
        return None

    def header(self, path: Path, budget: ReadBudget | None = None) -> Header | None:
        """Header of a task file, parsed once per content (hard links, copies and `touch`
        parse nothing again); None if it is not a readable task file (remembered too, so junk
        is not re-parsed on every miss). Reading a changed file spends BUDGET (a fresh one
        when None: one file always fits); LookupIncomplete when it is spent."""
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_TASK_FILE_BYTES:
            return None  # a link, FIFO or directory is never followed; too large is junk
        inode = (info.st_dev, info.st_ino)
        version = (info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        digest = self._headers.digest_of(inode, version)
        if digest is not None:
            known, header = self._headers.get(digest)
            if known:
                return header
        budget = budget or ReadBudget()
        budget.read(info.st_size, path)
        try:
            raw = untrusted_yaml.read_regular(path, MAX_TASK_FILE_BYTES)
        except UNREADABLE:
            return None
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        known, header = self._headers.get(digest)
        if not known:
            header = self._parse(raw, path, budget)
        self._headers.put(inode, version, digest, header)
        return header

    @staticmethod
    def _parse(raw: bytes, path: Path, budget: ReadBudget) -> Header | None:
        """read_header within what is left of BUDGET's nodes."""
        limit = min(untrusted_yaml.MAX_NODES, budget.nodes)
        try:
            header, nodes = read_header(raw, path.name, limit)
        except untrusted_yaml.TooManyNodes:
            budget.nodes -= limit
            if limit < untrusted_yaml.MAX_NODES:
                raise LookupIncomplete(f"lookup stopped at {path.name}: its budget of YAML "
                                       f"nodes to parse is spent") from None
            return None  # over what any task file holds: junk
        budget.nodes -= nodes
        return header

    def claimants_elsewhere(self, task_id: str, found: Path,
                            budget: ReadBudget | None = None) -> list[Path]:
        """Files besides FOUND, under any name, whose `id` is TASK_ID: a copy planted under
        another name never decides either. The id map is rebuilt when a directory changes
        (LookupIncomplete when BUDGET runs out first)."""
        budget = budget or ReadBudget()
        return [path for place in (self.root, self.root / "archive")
                for name in self._ids_in(place, budget).get(task_id, [])
                if (path := place / name) != found]

    def _ids_in(self, place: Path, budget: ReadBudget) -> dict[str, list[str]]:
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
            header = self.header(path, budget)
            if header is not None:
                mapping.setdefault(header.id, []).append(path.name)
        with self._ids_lock:
            self._ids[place] = (info.st_mtime_ns, built, mapping)
        return mapping

    def unreadable_named(self, task_id: str) -> list[Path]:
        """Files named for TASK_ID that cannot be read as a task (too large, not YAML): the
        stage's file may be there, so it must not be taken for missing."""
        budget = ReadBudget()
        return [path for path in self._names.candidates(self.root, task_id)
                if path.name.endswith(f"-{task_id[:8]}.yml")
                and self.header(path, budget) is None]

    def stage_files(self) -> list[tuple[Path, Header]]:
        """Our stage files in the directory (not archive/), with their headers: as many as
        one read budget recognises (the rest on a later call)."""
        return [(path, header) for path, header in self.headers_within(
            sorted(self.root.glob("*.yml"))) if header is not None and header.stage]

    def headers_within(self, paths: list[Path]) -> list[tuple[Path, Header | None]]:
        """PATHS with their headers, stopping where one read budget is spent (what was read
        is remembered: the next call goes further); said once per process."""
        budget, found = ReadBudget(), []
        for path in paths:
            try:
                found.append((path, self.header(path, budget)))
            except LookupIncomplete as err:
                said_once("task_lookup_incomplete", str(path.parent), str(err))
                break
        return found
