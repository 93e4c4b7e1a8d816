"""The agent task-file contract: build, write, find by id and update task YAML files."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import untrusted_yaml
from exceptions import ActivityRuntimeError
from files import write_private

log = logging.getLogger("taskfiles")
SOURCE_AGENT = "temporal-worker"
DECIDING = ("approved", "rejected", "cancelled", "failed")  # statuses that end a block wait
MAX_TASK_FILE_BYTES = 1024 * 1024
MAX_CACHED_HEADERS = 50_000
_NAME = re.compile(r"^\d{8}-\d{6}-(.{1,8})\.yml$")  # group: the id's first 8 chars
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class TaskSpec:
    """What one agent stage asks for; the token is added at dispatch time."""

    task_id: str
    target_agent: str
    task_type: str
    summary: str
    payload: dict[str, Any] = field(default_factory=dict)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def file_name(task_id: str, created: datetime) -> str:
    return f"{created.astimezone(UTC):%Y%m%d-%H%M%S}-{task_id[:8]}.yml"


def build_document(spec: TaskSpec, token_b64: str, created: datetime,
                   history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The task file's mapping, keys in the contract's order."""
    note = spec.summary
    return {
        "id": spec.task_id,
        "created": iso(created),
        "source_agent": SOURCE_AGENT,
        "target_agent": spec.target_agent,
        "task_type": spec.task_type,
        "risk_level": "low",
        "requires_approval": False,
        "status": "submitted",
        "summary": spec.summary,
        "ttl_days": 7,
        "payload": {**spec.payload, "task_token": token_b64},
        "result": {"output": None, "completed_by": None, "completed_at": None},
        "history": history
        or [{"timestamp": iso(created), "status": "submitted", "actor": SOURCE_AGENT,
             "note": note}],
    }


def dump(document: dict[str, Any]) -> bytes:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=1000).encode("utf-8")


def load(path: Path) -> dict[str, Any]:
    """Parse one task file safely; ValueError (InputRefused too) when it is not a mapping."""
    data = untrusted_yaml.load_file(path, MAX_TASK_FILE_BYTES)
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a YAML mapping")
    return data


class _DirIndex:
    """File names of one directory grouped by the 8-char id prefix, refreshed on mtime change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[int, dict[str | None, list[str]]]] = {}

    def candidates(self, directory: Path, task_id: str) -> list[Path]:
        try:
            mtime = os.stat(directory).st_mtime_ns
        except FileNotFoundError:
            return []
        with self._lock:
            cached = self._cache.get(directory)
            # mtime ticks are coarse: a miss on a cached listing rescans once to be sure.
            if cached is None or cached[0] != mtime or task_id[:8] not in cached[1]:
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


_INDEX = _DirIndex()


class DuplicateTaskId(ActivityRuntimeError, ValueError):
    """Several task files claim one id: none of them is trusted."""


def find_task_file(task_dir: Path, task_id: str, *, include_archive: bool = True) -> Path | None:
    """The one file whose `id` is TASK_ID in TASK_DIR (or its archive/), None if there is none.

    Files named after the id are looked at first; only when none holds it is every other
    file read (its header cached per version, so a repeated miss costs a stat per file).
    Raises DuplicateTaskId when several files claim the id: first-match-wins would let a
    planted copy decide.
    """
    directories = [task_dir, task_dir / "archive"] if include_archive else [task_dir]
    for lookup in (_INDEX.candidates, _INDEX.others):
        matches = [path for directory in directories for path in lookup(directory, task_id)
                   if (_header(path) or ("",))[0] == task_id]
        if len(matches) > 1:
            names = ", ".join(sorted(str(path.relative_to(task_dir)) for path in matches))
            raise DuplicateTaskId(f"{len(matches)} task files claim id {task_id}: {names}")
        if matches:
            return matches[0]
    return None


Header = tuple[str, str | None, str | None]  # (id, status, actor of the move to status)


class _HeaderCache:
    """(id, status) per task-file version, junk remembered as None; least recently used
    evicted first; thread-safe (activities and the sweeper read from worker threads)."""

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


_HEADERS = _HeaderCache()


def _header(path: Path) -> Header | None:
    """(id, status) of a task file, parsed once per version (inode, mtime, size); None if
    it is not a readable task file (remembered too, so junk is not re-parsed on every miss).
    """
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    version = (info.st_ino, info.st_mtime_ns, info.st_size)
    known, cached = _HEADERS.get(path, version)
    if known:
        return cached
    try:
        document = load(path)
    except (OSError, ValueError, yaml.YAMLError):
        header = None
    else:
        status = document.get("status")
        status = str(status) if status is not None else None
        header = (str(document.get("id")), status, _mover(document, status))
    _HEADERS.put(path, version, header)
    return header


def _mover(document: dict[str, Any], status: str | None) -> str | None:
    """The actor of the newest history entry that set STATUS (who made the move)."""
    history = document.get("history")
    for entry in reversed(history if isinstance(history, list) else []):
        if isinstance(entry, dict) and entry.get("status") == status:
            actor = "".join(ch for ch in str(entry.get("actor") or "") if ch.isprintable())
            return actor.strip()[:200] or None  # one printable line: it becomes `decided_by`
    return None


def dispatch(task_dir: Path, spec: TaskSpec, token_b64: str, note: str | None = None) -> Path:
    """Write (or rewrite, for a new attempt) the one live task file of SPEC; return its path."""
    existing = find_task_file(task_dir, spec.task_id, include_archive=False)
    now = utc_now()
    if existing is None:
        path = task_dir / file_name(spec.task_id, now)
        document = build_document(spec, token_b64, now)
    else:
        path = existing
        try:
            old = load(existing)
            created = datetime.fromisoformat(str(old["created"]).replace("Z", "+00:00"))
            history = list(old.get("history") or [])
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
            created, history = now, []
        history.append({"timestamp": iso(now), "status": "submitted", "actor": SOURCE_AGENT,
                        "note": note or "re-dispatched with a fresh task token"})
        document = build_document(spec, token_b64, created, history)
    write_private(path, dump(document))
    return path


def set_status(path: Path, status: str, note: str, actor: str = SOURCE_AGENT,
               root: Path | None = None) -> dict[str, Any]:
    """Set STATUS on the task file at PATH with a history entry; atomic, 0600, written
    without following a link below ROOT (the task directory)."""
    document = load(path)
    document["status"] = status
    history = document.get("history")
    if not isinstance(history, list):
        history = []
    history.append({"timestamp": iso(utc_now()), "status": status, "actor": actor, "note": note})
    document["history"] = history
    write_private(path, dump(document), root)
    return document


@dataclass(frozen=True)
class Decision:
    """An originating task's status and who set it (the history entry of that move)."""

    status: str | None
    by: str | None = None

    def counts(self, approvers: frozenset[str]) -> bool:
        """Credible as an operator's decision: anyone when APPROVERS is empty (upstream),
        else only one of them (an agent editing the file is not)."""
        return not approvers or self.by in approvers


def read_decision(task_dir: Path, task_id: str,
                  approvers: frozenset[str] = frozenset()) -> Decision:
    """Status of task TASK_ID and the actor who set it, when credible (see Decision.counts);
    duplicates never decide. Both refusals are reported."""
    try:
        path = find_task_file(task_dir, task_id)
    except DuplicateTaskId as err:
        log.warning("duplicate_task_id", extra={"task_id": task_id, "error": str(err)[:500]})
        return Decision(None)
    header = _header(path) if path is not None else None
    decision = Decision(header[1], header[2]) if header is not None else Decision(None)
    if decision.counts(approvers):
        return decision
    if decision.status in DECIDING:
        log.warning("file_decision_ignored", extra={
            "task_id": task_id, "status": decision.status, "actor": decision.by,
            "reason": "not set by one of FILE_APPROVERS"})
    return Decision(None)


def read_status(task_dir: Path, task_id: str) -> str | None:
    """The `status` of task TASK_ID, or None when no single readable file has that id."""
    return read_decision(task_dir, task_id).status
