"""files.write_private: 0600, atomic, symlink-safe, private directories."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from exceptions import UnsafePathError
from safeio.untrusted_yaml import FileTooLarge, read_regular
from safeio.writing import write_private

ROOT = Path(__file__).resolve().parent.parent


def test_mode_0600_even_with_umask_000(tmp_path):
    old = os.umask(0)
    try:
        write_private(tmp_path / "d" / "f.yml", b"x: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d" / "f.yml").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    assert not (tmp_path / "d" / "f.yml.tmp").exists()


@pytest.mark.parametrize("planted", ["f.yml", "f.yml.tmp"])
def test_planted_symlink_is_not_followed(tmp_path, planted):
    target = tmp_path / "victim"
    target.write_text("precious")
    directory = tmp_path / "tasks"
    directory.mkdir(mode=0o700)
    (directory / planted).symlink_to(target)
    write_private(directory / "f.yml", b"new")
    assert target.read_text() == "precious"
    assert not (directory / "f.yml").is_symlink()
    assert (directory / "f.yml").read_bytes() == b"new"


def test_a_directory_planted_at_the_tmp_name_does_not_block_the_write(tmp_path):
    """A hostile agent's directory named `f.yml.tmp` (unlink cannot take it): the write goes
    through a temporary name of its own beside it, and leaves no temporary file behind."""
    directory = tmp_path / "tasks"
    directory.mkdir(mode=0o700)
    (directory / "f.yml.tmp").mkdir()
    write_private(directory / "f.yml", b"new")
    assert (directory / "f.yml").read_bytes() == b"new"
    assert stat.S_IMODE((directory / "f.yml").stat().st_mode) == 0o600
    assert sorted(path.name for path in directory.iterdir()) == ["f.yml", "f.yml.tmp"]


def test_world_writable_dir_is_refused_and_left_alone(tmp_path):
    directory = tmp_path / "tasks"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(UnsafePathError, match="writable by every user"):
        write_private(directory / "f", b"x")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o777  # never chmod what we did not make
    assert not (directory / "f").exists()


@pytest.mark.parametrize("depth", [1, 2])
def test_symlinked_directory_component_below_root_is_refused(tmp_path, depth):
    root, elsewhere = tmp_path / "audit", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir(mode=0o755)
    parent = root / "a" if depth == 2 else root
    parent.mkdir(exist_ok=True)
    (parent / "build").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symlink"):
        write_private(parent / "build" / "request.md", b"x", root)
    assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755


def test_path_outside_root_is_refused(tmp_path):
    with pytest.raises(UnsafePathError, match="outside"):
        write_private(tmp_path / "x" / "f", b"x", tmp_path / "y")


def test_dir_owned_by_someone_else_is_refused(tmp_path):
    directory = tmp_path / "tasks"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    with pytest.raises(UnsafePathError, match="owned by uid 65534"):
        write_private(directory / "f", b"x")
    assert not (directory / "f").exists()


def test_read_regular(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(FileTooLarge):
        read_regular(tmp_path / "big", 10)
    assert read_regular(tmp_path / "big", 11) == b"x" * 11
    (tmp_path / "link").symlink_to(tmp_path / "big")
    with pytest.raises(OSError):
        read_regular(tmp_path / "link", 100)


def test_every_created_parent_is_0700_under_umask_000(tmp_path):
    old = os.umask(0)
    try:
        write_private(tmp_path / "a" / "b" / "c" / "f", b"x")
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


def test_the_data_and_the_rename_are_synced_before_the_write_returns(tmp_path):
    """A crash never leaves an empty or half file under the final name: the kernel, as strace
    records it, sees fsync of the tmp file, then the rename, then fsync of the directory."""
    strace = shutil.which("strace")
    assert strace, "strace is required (Debian's package)"
    log = tmp_path / "strace.log"
    code = ("import sys; from pathlib import Path; from safeio.writing import write_private; "
            "write_private(Path(sys.argv[1]), b'x: 1\\n')")
    subprocess.run([strace, "-f", "-e", "trace=openat,fsync,fdatasync,renameat,renameat2",
                    "-o", str(log), sys.executable, "-c", code, str(tmp_path / "f.yml")],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    calls = [line.split(None, 1)[1] for line in log.read_text().splitlines()
             if re.search(r"f\.yml|fsync|fdatasync", line) and "resumed" not in line]
    opened = next(c for c in calls if c.startswith("openat(") and '"f.yml.tmp"' in c)
    tmp_fd = opened.rsplit("= ", 1)[1].strip()
    rename = next(i for i, c in enumerate(calls) if c.startswith("renameat")
                  and '"f.yml.tmp"' in c and '"f.yml")' in c)
    dir_fd = calls[rename].split("(", 1)[1].split(",", 2)[-1].split(",")[0].strip()
    synced = [i for i, c in enumerate(calls) if re.match(r"f(data)?sync\(", c)]
    assert any(i < rename and re.match(rf"f(data)?sync\({tmp_fd}\)", calls[i])
               for i in synced), calls  # the data, before it has the final name
    assert any(i > rename and re.match(rf"f(data)?sync\({dir_fd}\)", calls[i])
               for i in synced), calls  # the name, before the caller goes on
