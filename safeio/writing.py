"""The one place we write files: private dirs, 0600 files, atomic, never through symlinks."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from exceptions import UnsafePathError

DIR_MODE = 0o700
FILE_MODE = 0o600
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC


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
        os.chmod(path, DIR_MODE)  # ours: just created


def _check_dir(fd: int, name: str) -> None:
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        raise UnsafePathError(f"refusing to write into {name}: owned by uid {info.st_uid}")
    if info.st_mode & 0o002:
        raise UnsafePathError(f"refusing to write into {name}: writable by every user")


def _open_root(root: Path) -> int:
    """The trusted root (created 0700 when missing; its own path may be a link we chose)."""
    try:
        _make_dirs(root)
        fd = os.open(root, _DIR)
    except OSError as err:
        raise UnsafePathError(f"cannot use directory {root}: {err.strerror}") from None
    try:
        _check_dir(fd, str(root))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _step(parent_fd: int, name: str, shown: str) -> int:
    """Open (creating 0700 if missing) the directory NAME below PARENT_FD, never via a link."""
    try:
        os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
        created = True
    except FileExistsError:
        created = False
    except OSError as err:
        raise UnsafePathError(f"cannot create {shown}: {err.strerror}") from None
    try:
        fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError as err:
        reason = "is a symlink" if os.path.islink(shown) else err.strerror
        raise UnsafePathError(f"refusing to write below {shown}: {reason}") from None
    try:
        if created:
            os.fchmod(fd, DIR_MODE)  # ours: just created, so the umask does not decide
        _check_dir(fd, shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _parent_fd(path: Path, root: Path) -> int:
    """PATH's directory, reached from ROOT one component at a time (missing ones created
    0700), never through a link; the caller closes it."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise UnsafePathError(f"{path} is outside {root}") from None
    fd = _open_root(root)
    shown = root
    try:
        for part in parts[:-1]:
            shown = shown / part
            next_fd = _step(fd, part, str(shown))
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_beneath(path: Path, root: Path, flags: int) -> int:
    """Open (creating 0600 with O_CREAT) the file PATH below ROOT without following a link
    anywhere below ROOT; the caller closes the descriptor."""
    dir_fd = _parent_fd(path, root)
    try:
        return os.open(path.name, flags | os.O_NOFOLLOW | _CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    except OSError as err:
        raise UnsafePathError(f"cannot open {path}: {err.strerror}") from None
    finally:
        os.close(dir_fd)


def write_private(path: Path, data: bytes, root: Path | None = None) -> None:
    """Write DATA to PATH as 0600 via tmp + fsync + rename. Every directory between ROOT
    (default: PATH's own directory) and PATH is entered without following a symlink, and a
    symlink planted at PATH itself is replaced, never written through."""
    fd = _parent_fd(path, root or path.parent)
    try:
        _write_in(fd, path.name, data, str(path))
    finally:
        os.close(fd)


def _write_in(dir_fd: int, name: str, data: bytes, shown: str) -> None:
    tmp = name + ".tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)  # a stale tmp or a planted symlink: the link goes
    except FileNotFoundError:
        pass
    except OSError:  # what unlink cannot take (a directory planted there): write beside it
        tmp = f"{name}.{os.urandom(6).hex()}.tmp"  # `*.tmp`: the tooling ignores it too
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
    try:
        fd = os.open(tmp, flags, FILE_MODE, dir_fd=dir_fd)
    except OSError as err:
        raise UnsafePathError(f"cannot create {shown}.tmp: {err.strerror}") from None
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
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a link at NAME
    os.fsync(dir_fd)
