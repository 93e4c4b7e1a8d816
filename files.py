"""The one place we write files: private dirs, 0600 files, atomic, never through symlinks."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from exceptions import UnsafePathError

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(directory: Path) -> None:
    """Create DIRECTORY (0700) or check an existing one is ours and not writable by others."""
    try:
        _make_dirs(directory)
        info = os.stat(directory)
    except OSError as err:
        raise UnsafePathError(f"cannot use directory {directory}: {err.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"{directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafePathError(f"refusing to write into {directory}: owned by uid {info.st_uid}")
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(directory, DIR_MODE)


def _make_dirs(directory: Path) -> None:
    """mkdir -p where every directory we create is 0700 whatever the umask."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(path, DIR_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Write DATA to PATH as 0600 via tmp + fsync + rename; planted symlinks are not followed."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a stale tmp or a planted symlink: remove the link, never its target
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, FILE_MODE)
    except OSError as err:
        raise UnsafePathError(f"cannot create {tmp}: {err.strerror}") from None
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)  # replaces a symlink at PATH itself rather than writing through it
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
