"""The worker's name index follows the directory's events: right after every change, and
listed again only when it must be (first look, lost events, another directory)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from taskdir import TaskDirectory, TaskSpec
from taskdir.index import NameIndex
from testbed.processes import ROOT


def spec(task_id: str | None = None) -> TaskSpec:
    return TaskSpec(task_id=task_id or str(uuid.uuid4()), target_agent="dev",
                    task_type="build_plan", summary="Implement build: x")


@pytest.fixture
def listings(monkeypatch) -> list[Path]:
    """Every directory listing the name index makes, in order."""
    seen: list[Path] = []
    real = NameIndex._scan
    monkeypatch.setattr(NameIndex, "_scan", staticmethod(lambda d: seen.append(d) or real(d)))
    return seen


def named(directory: Path, task_id: str, stamp: str = "20261130-010203") -> Path:
    return directory / f"{stamp}-{task_id[:8]}.yml"


def test_the_worker_index_watches(tmp_path):
    assert TaskDirectory(tmp_path, watch=True)._names.watching
    assert not TaskDirectory(tmp_path)._names.watching


def test_changes_are_seen_at_once_without_listing_again(tmp_path, listings):
    tasks = TaskDirectory(tmp_path, watch=True)
    first = tasks.dispatch(spec(), "dA==")
    assert len(listings) == 1  # the first look lists the directory
    second_id = str(uuid.uuid4())
    second = tasks.dispatch(spec(second_id), "dA==")
    assert tasks.find(second_id) == second
    # Another process's moves: a rename within the directory, a removal, a hard link.
    moved = named(tmp_path, second_id, "20261130-111111")
    os.rename(second, moved)
    assert tasks.find(second_id) == moved
    first_id = first.name[16:24]
    first.unlink()
    assert tasks.find(first_id) is None
    os.link(moved, named(tmp_path, second_id, "20261130-222222"))
    with pytest.raises(ValueError, match="2 task files claim id"):
        tasks.find(second_id)
    assert listings == [tmp_path]  # one listing for all of it (archive/ does not exist)


def test_watched_names_match_a_fresh_listing_after_random_changes(tmp_path):
    rng = random.Random(25)
    outside = tmp_path / "outside"
    outside.mkdir()
    directory = tmp_path / "tasks"
    directory.mkdir()
    watched, plain = NameIndex(watch=True), NameIndex()
    ids = [uuid.uuid4().hex for _ in range(40)]
    watched.candidates(directory, ids[0])
    for step in range(600):
        names = sorted(os.listdir(directory))
        op = rng.choice(["create", "create", "remove", "rename", "out", "in", "odd"])
        task_id = rng.choice(ids)
        if op == "create":
            named(directory, task_id, f"20261130-{step:06d}").write_text("x")
        elif op == "remove" and names:
            (directory / rng.choice(names)).unlink()
        elif op == "rename" and names:
            target = named(directory, task_id, f"20261130-{step:06d}")
            os.rename(directory / rng.choice(names), target)
        elif op == "out" and names:
            os.rename(directory / rng.choice(names), outside / f"{step}.yml")
        elif op == "in":
            source = outside / f"in-{step}.yml"
            source.write_text("x")
            os.rename(source, rng.choice([directory / f"{step}.yml", named(directory, task_id)]))
        elif op == "odd":
            (directory / f"{step}.txt").write_text("x")  # not a task file's name
        if step % 25 == 0:
            for probe in [*ids[:10], "ffffffff-none"]:
                assert sorted(watched.candidates(directory, probe)) == \
                    sorted(plain.candidates(directory, probe)), (step, op)
                assert sorted(watched.others(directory, probe)) == \
                    sorted(plain.others(directory, probe)), (step, op)


def test_lost_events_make_it_list_again(tmp_path, listings):
    """More changes than the kernel queues between two looks: the index lists afresh."""
    queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    tasks = TaskDirectory(tmp_path, watch=True)
    assert tasks.find("00000000-nothing-yet") is None
    listed = len(listings)
    count = queued + 50
    for n in range(count):
        os.close(os.open(tmp_path / f"20261130-010203-{n:08d}.yml", os.O_CREAT | os.O_WRONLY))
    last_id = str(uuid.uuid4())
    last = tasks.dispatch(spec(last_id), "dA==")
    assert len(listings) > listed
    assert tasks.find(last_id) == last
    dropped = f"{count - 1:08d}"  # made after the queue was full: only a listing shows it
    only = tmp_path / f"20261130-010203-{dropped}.yml"
    assert tasks._names.candidates(tmp_path, dropped) == [only]


def test_a_directory_put_in_its_place_is_listed_afresh(tmp_path, listings):
    root = tmp_path / "tasks"
    root.mkdir()
    tasks = TaskDirectory(root, watch=True)
    old_id = str(uuid.uuid4())
    old = tasks.dispatch(spec(old_id), "dA==")
    os.rename(root, tmp_path / "moved-away")
    root.mkdir()
    new_id = str(uuid.uuid4())
    new = named(root, new_id)
    new.write_bytes((tmp_path / "moved-away" / old.name).read_bytes().replace(
        old_id.encode(), new_id.encode()))
    assert tasks.find(new_id) == new
    assert tasks.find(old_id) is None
    # The moved directory is no longer followed: a change there is not this root's.
    (tmp_path / "moved-away" / old.name).unlink()
    assert tasks.find(new_id) == new
    assert listings.count(root) == 2


def lookup_after(made_without: str, directory: Path, also_shown: str,
                 launcher: tuple[str, ...] = ()) -> list[str]:
    """In a fresh process (started through LAUNCHER): MADE_WITHOUT makes `index` with no
    inotify to be had; then a file made after the index's first look must be found. Prints
    ALSO_SHOWN, whether the index watches, and whether it found the file."""
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from taskdir.index import NameIndex
{made_without}
directory = Path({str(directory)!r})
assert index.candidates(directory, "abcdef12-x") == []
made = directory / "20261130-010203-abcdef12.yml"
made.write_text("x")
print({also_shown} index.watching, index.candidates(directory, "abcdef12-x") == [made])
"""
    return subprocess.run([*launcher, sys.executable, "-c", script], capture_output=True,
                          text=True, check=True, timeout=60).stdout.split()


def test_without_an_inotify_instance_it_lists_on_change(tmp_path):
    """No inotify to be had (here: no file descriptor left when the index is made): the index
    works as the agents' CLI's does, listing a directory whose mtime moved."""
    made_without = """
import os, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) - 1, hard))
index = NameIndex(watch=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
"""
    assert lookup_after(made_without, tmp_path, "") == ["False", "True"]


def test_without_the_inotify_library_it_lists_on_change(tmp_path):
    """A venv not yet set up again after an upgrade (no `asyncinotify`): the worker's index
    lists on change instead of failing."""
    made_without = "sys.modules['asyncinotify'] = None\nindex = NameIndex(watch=True)"
    assert lookup_after(made_without, tmp_path, "") == ["False", "True"]


# A user namespace of its own whose inotify instance limit is 0: the kernel refuses as when
# `max_user_instances` is reached, and no instance of the machine's is taken to get there.
NO_INSTANCES = ("unshare", "--user", "--map-root-user", "sh", "-c",
                'echo 0 > /proc/sys/user/max_inotify_instances && exec "$0" "$@"')


def test_with_the_users_inotify_instances_used_up_it_lists_on_change(tmp_path):
    """`max_user_instances` reached (another program holds them all): no watch, a lookup still
    finds what was made after the index."""
    probe = subprocess.run([*NO_INSTANCES, "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no user namespace to be had here: {probe.stderr.decode()[:200]}")
    made_without = "index = NameIndex(watch=True)"
    limit = 'open("/proc/sys/user/max_inotify_instances").read().strip(),'
    assert lookup_after(made_without, tmp_path, limit, NO_INSTANCES) == ["0", "False", "True"]


def test_a_directory_on_a_file_system_not_known_local_is_listed(tmp_path):
    """inotify sees only this machine's changes: on NFS, SMB or FUSE another host's new file
    raises no event here, so such a directory (here: sysfs, neither local disk nor tmpfs) is
    listed as before instead of watched."""
    from taskdir.watch import DirectoryWatch

    watch = DirectoryWatch.open()
    assert watch is not None
    listed: list[Path] = []

    def scan(directory: Path) -> dict:
        listed.append(directory)
        return {}

    assert watch.groups(Path("/sys/kernel"), os.stat("/sys/kernel").st_ino, scan,
                        lambda name: None) is None
    assert watch.groups(tmp_path, os.stat(tmp_path).st_ino, scan, lambda name: None) == {}
    assert listed == [tmp_path]


def test_the_file_system_is_the_deepest_mount_above_the_directory(tmp_path, monkeypatch):
    """Read from mountinfo as the kernel writes it: a mount point with a space (octal-escaped)
    inside another mount, and a later mount on the same point hiding the earlier one."""
    import taskdir.watch as watch

    share = tmp_path / "with space"
    (share / "tasks").mkdir(parents=True)
    point = str(share).replace(" ", "\\040")
    mounts = tmp_path / "mountinfo"
    mounts.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"40 22 0:50 / {tmp_path} rw shared:7 - tmpfs tmpfs rw\n"
        f"41 40 0:51 / {point} rw shared:8 - fuse.sshfs host:/x rw\n"
        f"42 41 0:52 / {point} rw shared:9 - nfs4 host:/tasks rw,vers=4.2\n")
    monkeypatch.setattr(watch, "MOUNTS", mounts)
    assert watch.file_system(share / "tasks") == "nfs4"
    assert watch.file_system(tmp_path / "with") == "tmpfs"  # a prefix of the name is not inside
    assert watch.file_system(Path("/usr")) == "ext4"
