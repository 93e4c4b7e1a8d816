"""files.write_private: 0600, atomic, symlink-safe, private directories."""

from __future__ import annotations

import os
import stat

import pytest

from exceptions import UnsafePathError
from safeio.untrusted_yaml import FileTooLarge, read_regular
from safeio.writing import write_private


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
