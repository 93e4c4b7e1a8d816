"""Directory names kept current from Linux inotify events (through `asyncinotify`): a busy
directory is listed once, not again after every change."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncinotify import Event, Inotify, Mask

# File systems whose inotify events include every change (/proc/self/mountinfo's type): on
# NFS, SMB, FUSE and the like a change made on another machine raises no event here, so
# those are listed.
LOCAL_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs",
                                "overlay", "reiserfs", "jfs"})
MOUNTS = Path("/proc/self/mountinfo")
log = logging.getLogger("taskdir")

Groups = dict[str | None, dict[str, None]]  # id prefix (None: any id) -> names, ordered


@dataclass
class _Watched:
    inode: int
    groups: Groups
    prefix_of: Callable[[str], str | None] = field(repr=False)
    stale: bool = False  # events were lost: list it again

    def apply(self, name: str, present: bool) -> None:
        if not name.endswith(".yml"):
            return
        prefix = self.prefix_of(name)
        if present:
            self.groups.setdefault(prefix, {})[name] = None
        elif (names := self.groups.get(prefix)) is not None:
            names.pop(name, None)


def _unescape(field_text: str) -> str:
    """A mountinfo path as the kernel wrote it (space, tab, newline, backslash as octal)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field_text = field_text.replace(code, char)
    return field_text


def file_system(directory: Path) -> str | None:
    """The type of the file system DIRECTORY lives on (the deepest mount above it), or None."""
    try:
        target = os.path.realpath(directory)
        lines = MOUNTS.read_text().splitlines()
    except OSError:
        return None
    best, kind = -1, None
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if len(fields) < 5 or not rest:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # a later mount on the same point hides the earlier
            best, kind = len(point), rest[0]
    return kind


class DirectoryWatch:
    """One inotify instance for the directories one long-lived index looks into. Not
    thread-safe: the index calls it under its own lock."""

    def __init__(self, inotify: Inotify, mask: Mask,
                 fs_type: Callable[[Path], str | None] = file_system) -> None:
        self._inotify, self._mask, self._fs_type = inotify, mask, fs_type
        self._local_at: dict[tuple[Path, int], bool] = {}
        self._wd_of: dict[Path, int] = {}
        self._by_wd: dict[int, _Watched] = {}

    @classmethod
    def open(cls) -> DirectoryWatch | None:
        """A new watch, or None where there is no inotify (not Linux, no binding, or out of
        instances): the index then re-lists a directory whenever its mtime moves."""
        try:
            from asyncinotify import Inotify, Mask

            # sync_timeout 0: iterating yields the events queued now, never waits for more
            inotify = Inotify(sync_timeout=0)
        except (ImportError, RuntimeError, OSError) as err:  # OSError: max_user_instances
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            log.info("task_index_lists_on_change", extra={"reason": reason})
            return None
        mask = (Mask.CREATE | Mask.DELETE | Mask.MOVED_FROM | Mask.MOVED_TO | Mask.DELETE_SELF
                | Mask.MOVE_SELF | Mask.ONLYDIR | Mask.DONT_FOLLOW)
        return cls(inotify, mask)

    def groups(self, directory: Path, inode: int, scan: Callable[[Path], Groups],
               prefix_of: Callable[[str], str | None]) -> Groups | None:
        """DIRECTORY's names grouped by id prefix, current as of now; listed with SCAN only
        the first time, after lost events, or when the path holds another directory.
        None: it cannot be watched (out of watches, gone): the caller lists it itself."""
        self._drain()
        watched = self._by_wd.get(self._wd_of.get(directory, -1))
        if watched is not None and watched.inode == inode and not watched.stale:
            return watched.groups
        if not self._local(directory, inode):
            return None
        try:
            wd = self._inotify.add_watch(directory, self._mask).wd
        except OSError:  # ENOSPC: out of watches (max_user_watches); ENOENT: gone
            self._wd_of.pop(directory, None)
            return None
        self._wd_of[directory] = wd  # the same directory again keeps its wd
        watched = self._by_wd.get(wd)
        if watched is None or watched.stale or watched.inode != inode:
            # Watch first, then list, then apply what happened meanwhile: names are a set,
            # so an event the listing already shows changes nothing.
            watched = self._by_wd[wd] = _Watched(inode, scan(directory), prefix_of)
            self._drain()
        return None if watched.stale else watched.groups

    def _local(self, directory: Path, inode: int) -> bool:
        """Whether DIRECTORY's events show every change (said once per directory if not)."""
        known = self._local_at.get((directory, inode))
        if known is not None:
            return known
        kind = self._fs_type(directory)
        local = self._local_at[(directory, inode)] = kind in LOCAL_FILE_SYSTEMS
        if not local:
            log.info("task_index_lists_on_change", extra={
                "path": str(directory), "file_system": kind,
                "reason": "not a local file system: changes from other machines raise no "
                          "event here"})
        return local

    def _events(self) -> Iterator[Event]:
        """The events queued so far (none once the instance is closed)."""
        with contextlib.suppress(ValueError):  # closed
            yield from self._inotify

    def _drain(self) -> None:
        from asyncinotify import Mask

        for event in self._events():
            if Mask.Q_OVERFLOW in event.mask:  # events were lost: every directory is listed
                for watched in self._by_wd.values():
                    watched.stale = True
                continue
            watch = event.watch
            watched = self._by_wd.get(watch.wd) if watch is not None else None
            if watch is None or watched is None:
                continue
            if event.mask & (Mask.IGNORED | Mask.DELETE_SELF | Mask.MOVE_SELF):
                # Gone, or moved elsewhere (stop following it): the path is looked at afresh.
                del self._by_wd[watch.wd]
                if Mask.MOVE_SELF in event.mask:
                    with contextlib.suppress(OSError):
                        self._inotify.rm_watch(watch)
                continue
            if event.name is not None:
                present = bool(event.mask & (Mask.CREATE | Mask.MOVED_TO))
                if present or event.mask & (Mask.DELETE | Mask.MOVED_FROM):
                    watched.apply(str(event.name), present)
