"""Directory names kept current from Linux inotify events: a busy directory is listed once,
not again after every change (4,000 names cost ~5 ms a listing)."""

from __future__ import annotations

import errno
import logging
import os
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# <sys/inotify.h>
_CREATE, _DELETE, _MOVED_FROM, _MOVED_TO = 0x100, 0x200, 0x40, 0x80
_DELETE_SELF, _MOVE_SELF, _OVERFLOW, _IGNORED = 0x400, 0x800, 0x4000, 0x8000
_ONLYDIR, _DONT_FOLLOW = 0x01000000, 0x02000000
_NONBLOCK, _CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_MASK = (_CREATE | _DELETE | _MOVED_FROM | _MOVED_TO | _DELETE_SELF | _MOVE_SELF
         | _ONLYDIR | _DONT_FOLLOW)
# File systems whose inotify events include every change (statfs f_type): on NFS, SMB, FUSE
# and the like a change made on another machine raises no event here, so those are listed.
LOCAL_FILE_SYSTEMS = {0xEF53: "ext2/3/4", 0x58465342: "xfs", 0x9123683E: "btrfs",
                      0x01021994: "tmpfs", 0x2FC12FC1: "zfs", 0xF2F52010: "f2fs",
                      0x794C7630: "overlayfs", 0x52654973: "reiserfs", 0x3153464A: "jfs"}
log = logging.getLogger("taskdir")
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name

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


class DirectoryWatch:
    """One inotify instance for the directories one long-lived index looks into. Not
    thread-safe: the index calls it under its own lock."""

    def __init__(self, fd: int, add_watch: Callable[[int, bytes, int], int],
                 rm_watch: Callable[[int, int], int],
                 fs_type: Callable[[Path], int | None]) -> None:
        self._fd = fd
        self._add_watch, self._rm_watch, self._fs_type = add_watch, rm_watch, fs_type
        self._said: set[Path] = set()
        self._wd_of: dict[Path, int] = {}
        self._by_wd: dict[int, _Watched] = {}
        weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls) -> DirectoryWatch | None:
        """A new watch, or None where there is no inotify (not Linux, or out of instances):
        the index then re-lists a directory whenever its mtime moves."""
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)  # the C library the process runs on
            init, add, rm = libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch
        except (OSError, AttributeError):
            log.info("task_index_lists_on_change", extra={"reason": "no inotify here"})
            return None
        add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
        rm.argtypes, rm.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        fd = init(_NONBLOCK | _CLOEXEC)
        if fd < 0:  # EMFILE: this user's inotify instances are used up (max_user_instances)
            log.info("task_index_lists_on_change",
                     extra={"reason": os.strerror(ctypes.get_errno())})
            return None
        statfs = libc.statfs
        statfs.argtypes, statfs.restype = [ctypes.c_char_p, ctypes.c_void_p], ctypes.c_int

        def fs_type(directory: Path) -> int | None:
            buffer = ctypes.create_string_buffer(512)  # struct statfs; f_type comes first
            if statfs(os.fsencode(directory), buffer) != 0:
                return None
            return struct.unpack_from("l", buffer.raw)[0] & 0xFFFFFFFF

        return cls(fd, add, rm, fs_type)

    def groups(self, directory: Path, inode: int, scan: Callable[[Path], Groups],
               prefix_of: Callable[[str], str | None]) -> Groups | None:
        """DIRECTORY's names grouped by id prefix, current as of now; listed with SCAN only
        the first time, after lost events, or when the path holds another directory.
        None: it cannot be watched (out of watches, gone): the caller lists it itself."""
        self._drain()
        watched = self._by_wd.get(self._wd_of.get(directory, -1))
        if watched is not None and watched.inode == inode and not watched.stale:
            return watched.groups
        if not self._local(directory):
            return None
        wd = self._add_watch(self._fd, os.fsencode(directory), _MASK)
        if wd < 0:
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

    def _local(self, directory: Path) -> bool:
        """Whether DIRECTORY's events show every change (said once per directory if not)."""
        kind = self._fs_type(directory)
        if kind in LOCAL_FILE_SYSTEMS:
            return True
        if directory not in self._said:
            self._said.add(directory)
            log.info("task_index_lists_on_change", extra={
                "path": str(directory), "file_system": hex(kind) if kind is not None else None,
                "reason": "not a local file system: changes from other machines raise no "
                          "event here"})
        return False

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except OSError as err:
                if err.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                raise
            self._apply(data)

    def _apply(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size:offset + _EVENT.size + length]
            offset += _EVENT.size + length
            if mask & _OVERFLOW:  # events were lost: every directory is listed again
                for watched in self._by_wd.values():
                    watched.stale = True
                continue
            watched = self._by_wd.get(wd)
            if watched is None:
                continue
            if mask & (_IGNORED | _DELETE_SELF | _MOVE_SELF):
                # Gone, or moved elsewhere (stop following it): the path is looked at afresh.
                del self._by_wd[wd]
                if mask & _MOVE_SELF:
                    self._rm_watch(self._fd, wd)
                continue
            name = os.fsdecode(raw.rstrip(b"\0"))
            if mask & (_CREATE | _MOVED_TO):
                watched.apply(name, True)
            elif mask & (_DELETE | _MOVED_FROM):
                watched.apply(name, False)
