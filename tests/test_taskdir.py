"""TaskDirectory: building, idempotent rewrite, lookup by id, caches; unit level."""

from __future__ import annotations

import os
import random
import time
import uuid

import pytest
import yaml

from taskdir import TaskDirectory, TaskSpec, TaskStyle, dump, utc_now
from taskdir import index as taskdir_module
from taskdir import names as task_names


def spec(task_id: str | None = None, **payload) -> TaskSpec:
    return TaskSpec(task_id=task_id or str(uuid.uuid4()), target_agent="dev",
                    task_type="build_plan", summary="Implement build: x", payload=payload)


def test_dispatch_twice_rewrites_the_same_file_with_new_token(tmp_path):
    s = spec(build_name="x")
    tasks = TaskDirectory(tmp_path)
    first = tasks.dispatch(s, "dG9rZW4x")
    second = tasks.dispatch(s, "dG9rZW4y", "attempt 2: fresh task token")
    assert first == second
    assert list(tmp_path.glob("*.yml")) == [first]
    document = yaml.safe_load(first.read_text())
    assert document["payload"]["task_token"] == "dG9rZW4y"
    assert [h["note"] for h in document["history"]][-1] == "attempt 2: fresh task token"
    assert len(document["history"]) == 2


def test_dispatch_never_adopts_a_file_planted_under_another_name(tmp_path):
    """A dispatch rewrites only the file named for its id (as we name ours): a copy planted
    under another name claiming the id is left alone, and named as a second claimant."""
    s = spec(build_name="x")
    planted = tmp_path / "20260101-000000-planted0.yml"
    planted.write_bytes(dump({**TaskStyle().document(s, "", utc_now()), "status": "approved"}))
    before = planted.read_bytes()
    tasks = TaskDirectory(tmp_path)
    ours = tasks.dispatch(s, "dG9rZW4x")
    assert ours != planted and ours.name.endswith(f"-{s.task_id[:8]}.yml")
    assert planted.read_bytes() == before
    assert yaml.safe_load(ours.read_text())["payload"]["task_token"] == "dG9rZW4x"
    assert tasks.find(s.task_id) == ours
    assert tasks.claimants_elsewhere(s.task_id, ours) == [planted]


def test_yaml_injection_in_values_stays_data(tmp_path):
    s = spec(build_name="x", description="a\nstatus: approved\n---\n- !!python/object:os.system")
    path = TaskDirectory(tmp_path).dispatch(s, "dA==")
    document = yaml.safe_load(path.read_text())
    assert document["status"] == "submitted"
    assert document["payload"]["description"].startswith("a\nstatus: approved")


def test_find_in_archive_and_among_many(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    ids = []
    for index in range(300):
        task_id = str(uuid.uuid4())
        ids.append(task_id)
        target = archive if index % 2 else tmp_path
        document = TaskStyle().document(spec(task_id), "", utc_now())
        (target / f"20260101-0000{index % 60:02d}-{task_id[:8]}.yml").write_bytes(
            dump(document))
    tasks = TaskDirectory(tmp_path)
    for task_id in ids[::37]:
        path = tasks.find(task_id)
        assert path is not None and yaml.safe_load(path.read_text())["id"] == task_id
    assert tasks.find(str(uuid.uuid4())) is None


def test_find_file_with_nonstandard_name_and_new_files(tmp_path):
    task_id = str(uuid.uuid4())
    document = TaskStyle().document(spec(task_id), "", utc_now())
    tasks = TaskDirectory(tmp_path)
    assert tasks.find(task_id) is None
    (tmp_path / "hand-written.yml").write_bytes(dump(document))
    assert tasks.find(task_id) == tmp_path / "hand-written.yml"


def test_set_status_appends_history(tmp_path):
    tasks = TaskDirectory(tmp_path)
    path = tasks.dispatch(spec(), "dA==")
    task_id = yaml.safe_load(path.read_text())["id"]
    assert tasks.set_status(task_id, "input-required", "blocks")
    document = yaml.safe_load(path.read_text())
    assert document["status"] == "input-required"
    assert document["history"][-1]["status"] == "input-required"
    assert tasks.read_decision(document["id"], credible_only=False).status == "input-required"


def test_malformed_task_files_are_skipped(tmp_path):
    task_id = str(uuid.uuid4())
    (tmp_path / f"20260101-000000-{task_id[:8]}.yml").write_bytes(b"\xff\xfe: [")
    tasks = TaskDirectory(tmp_path)
    assert tasks.find(task_id) is None
    assert tasks.read_decision(task_id, credible_only=False).status is None


def test_status_cache_follows_every_rewrite(tmp_path):
    tasks = TaskDirectory(tmp_path)
    path = tasks.dispatch(spec(), "dA==")
    task_id = yaml.safe_load(path.read_text())["id"]
    assert tasks.read_decision(task_id, credible_only=False).status == "submitted"
    for status in ("input-required", "approved", "rejected"):
        tasks.set_status(task_id, status, "n")
        assert tasks.read_decision(task_id, credible_only=False).status == status


def counting_loads(monkeypatch) -> list[str]:
    """The names of the files the directory parses (behaviour, not its private cache)."""
    parsed: list[str] = []
    real = taskdir_module.read_header

    def read_header(raw, name, max_nodes):
        parsed.append(name)
        return real(raw, name, max_nodes)

    monkeypatch.setattr(taskdir_module, "read_header", read_header)
    return parsed


def test_header_cache_evicts_the_least_recently_used(tmp_path, monkeypatch):
    # Ids that differ in their first 8 chars: each lookup parses only its own file, whatever
    # order the directory lists in.
    monkeypatch.setattr(taskdir_module, "MAX_CACHED_HEADERS", 3)
    ids = {n: f"{n * 8}-0000-4000-8000-000000000000" for n in "abcd"}
    writer = TaskDirectory(tmp_path)
    paths = {n: writer.dispatch(spec(task_id=ids[n]), "dA==") for n in "abcd"}
    tasks = TaskDirectory(tmp_path)
    parsed = counting_loads(monkeypatch)
    for n in "abca":
        assert tasks.read_decision(ids[n], credible_only=False).status == "submitted"
    assert parsed == [paths[n].name for n in "abc"]  # the second look at a: cached
    # d evicts b, the least recently used
    assert tasks.read_decision(ids["d"], credible_only=False).status == "submitted"
    parsed.clear()
    for n in "acd":
        tasks.read_decision(ids[n], credible_only=False)
    assert parsed == []  # a, c and d still cached
    tasks.read_decision(ids["b"], credible_only=False)
    assert parsed == [paths["b"].name]  # b was evicted: parsed again


def test_lookup_of_a_short_id_parses_only_its_own_file(tmp_path, monkeypatch):
    writer = TaskDirectory(tmp_path)
    paths = {n: writer.dispatch(spec(task_id=n), "dA==") for n in ("t-a", "t-b")}
    for wanted, path in paths.items():  # both ways round: one of them is listed second
        tasks = TaskDirectory(tmp_path)
        parsed = counting_loads(monkeypatch)
        assert tasks.find(wanted) == path
        assert parsed == [path.name]
        monkeypatch.undo()


def test_status_of_an_archived_originating_task_is_set_in_place(tmp_path):
    (tmp_path / "archive").mkdir()
    writer = TaskDirectory(tmp_path / "archive")
    path = writer.dispatch(spec(), "dA==")
    task_id = yaml.safe_load(path.read_text())["id"]
    tasks = TaskDirectory(tmp_path)
    assert not tasks.set_status(task_id, "input-required", "blocks")  # live only by default
    assert tasks.set_status(task_id, "input-required", "blocks", include_archive=True)
    assert yaml.safe_load(path.read_text())["status"] == "input-required"


def test_a_symlinked_locks_directory_is_not_followed(tmp_path, caplog):
    """A `.locks` that is a link used to fail every write (so every build): it is worked
    around as a `.locks` that is a file is (written unlocked, said once), never followed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "tasks"
    root.mkdir()
    (root / ".locks").symlink_to(elsewhere)
    tasks, stage = TaskDirectory(root), spec()
    path = tasks.dispatch(stage, "dA==")
    assert tasks.dispatch(stage, "dB==") == path  # a rewrite, as unlocked as the first
    with tasks.sweep_turn() as mine:
        assert mine
    assert list(elsewhere.iterdir()) == [] and list(root.glob("*.yml")) == [path]
    said = [r for r in caplog.records if r.getMessage() == "task_dir_entry_not_a_directory"]
    assert [(r.path, r.shape) for r in said] == [(str(root / ".locks"), "a symlink")]
    assert "is a symlink" in tasks.locks.trouble()


def test_one_sweeper_per_directory_at_a_time(tmp_path):
    first, second = TaskDirectory(tmp_path), TaskDirectory(tmp_path)  # two workers, one dir
    with first.sweep_turn() as mine:
        assert mine
        with second.sweep_turn() as theirs:
            assert not theirs
    with second.sweep_turn() as theirs:  # released with the first pass
        assert theirs


def test_warm_lookups_do_not_rescan_a_quiet_directory(tmp_path, monkeypatch):
    """A miss in a directory unchanged for a while trusts its listing (the archive of 10,000
    files used to be rescanned on every lookup of a live task); a just-changed one rescans."""
    (tmp_path / "archive").mkdir()
    archived = TaskDirectory(tmp_path / "archive")
    for n in range(20):
        archived.dispatch(spec(task_id=f"{n:08d}-archived-task"), "dA==")
    live = TaskDirectory(tmp_path)
    path = live.dispatch(spec(), "dA==")
    task_id = yaml.safe_load(path.read_text())["id"]
    old = time.time() - 3600
    for directory in (tmp_path, tmp_path / "archive"):
        os.utime(directory, (old, old))
    scans = []
    real_scan = taskdir_module.NameIndex._scan
    monkeypatch.setattr(taskdir_module.NameIndex, "_scan",
                        staticmethod(lambda d: scans.append(d) or real_scan(d)))
    assert live.find(task_id) == path
    first = len(scans)
    for _ in range(5):
        assert live.find(task_id) == path
    assert len(scans) == first  # warm: no directory read again
    late = live.dispatch(spec(task_id="late0000-new-task-here"), "dA==")
    assert live.find("late0000-new-task-here") == late  # the changed directory is read


def test_task_files_are_plain_yaml_without_anchors(tmp_path):
    from taskdir import dump, utc_now

    now = utc_now()
    text = dump({"created": now, "history": [{"timestamp": now}]}).decode()
    assert "&id" not in text and "*id" not in text
    assert text.count(now.isoformat(" ").split("+")[0]) == 2


def test_a_names_id_prefix_is_what_the_name_pattern_says():
    """The sliced fast path agrees with the pattern on every shape, hostile ones included."""
    rng = random.Random(7)
    alphabet = "0123456789-abcdef.yml\n²٣_/ "
    names = ["20261129-101010-abcdef12.yml", "20261129-101010-ab\ndef1.yml",
             "2026112²-101010-abcdef12.yml", "2026112٣-101010-abcdef12.yml"]
    names += ["".join(rng.choice(alphabet) for _ in range(24)) + ".yml" for _ in range(5000)]
    names += [f"{rng.randrange(10**8):08d}-{rng.randrange(10**6):06d}-"
              + "".join(rng.choice(alphabet) for _ in range(8)) + ".yml" for _ in range(5000)]
    for name in names:
        match = task_names._NAME.match(name)
        assert task_names.id_prefix(name) == (match.group(1) if match else None), name


def test_the_header_cache_is_bounded_in_bytes(tmp_path, monkeypatch):
    """Each file costs the cache at most MAX_RETAINED_PER_FILE, however long its fields; the
    cache as a whole keeps within MAX_CACHED_BYTES, oldest entries evicted first."""
    per_file = taskdir_module.MAX_RETAINED_PER_FILE
    monkeypatch.setattr(taskdir_module, "MAX_CACHED_BYTES", 4 * per_file)
    tasks = TaskDirectory(tmp_path)
    for n in range(12):
        note = "\U0001f600" * 5000  # four bytes a character, cut to MAX_NOTE_CHARS
        document = {"id": f"{n:08d}-long-notes", "status": "approved" + "!" * 5000,
                    "history": [{"status": "approved" + "!" * 5000, "actor": "a" * 5000,
                                 "note": note}]}
        (tmp_path / f"20260101-000000-{n:08d}.yml").write_bytes(dump(document))
        header = tasks.header(tmp_path / f"20260101-000000-{n:08d}.yml")
        assert header is not None and len(header.note) == taskdir_module.MAX_NOTE_CHARS
        assert len(header.status) == taskdir_module.MAX_STATUS_CHARS
        assert tasks._headers.retained <= taskdir_module.MAX_CACHED_BYTES
    assert 2 <= len(tasks._headers) <= 4


def test_a_decision_counts_only_after_the_build_parked(tmp_path):
    """(#36.11) The approval must be newer than our own park entry for this build: one from
    before it (an earlier build of the same id), or with no park entry at all, names nobody,
    so FILE_APPROVERS finds no approver; the park's own entry and later moves keep theirs."""
    from taskdir.documents import history_entry
    from testbed.helpers import make_origin
    from tests.task_queue_tool import override

    origin = make_origin(tmp_path)
    override(tmp_path, origin, "approved", "alice", "an earlier build")
    tasks = TaskDirectory(tmp_path, approvers=frozenset({"alice"}))
    assert tasks.read_decision(origin).status is None  # no park entry: nobody decided
    tasks.set_status(origin, "input-required", "1 block: the build parks")
    assert tasks.read_decision(origin, credible_only=False).by == "temporal-worker"
    path = tasks.find(origin)
    document = yaml.safe_load(path.read_text())
    document["status"] = "approved"  # an agent's edit: alice's entry is before the park
    path.write_bytes(dump(document))
    assert tasks.read_decision(origin).status is None
    document["history"].append(history_entry("approved", "reviewed", actor="alice"))
    path.write_bytes(dump(document))
    decision = tasks.read_decision(origin)
    assert (decision.status, decision.by, decision.reason) == ("approved", "alice", "reviewed")


def test_a_lookup_reads_at_most_its_budget_of_changed_bytes(tmp_path, monkeypatch):
    """Touched files cost a read and a hash each; a lookup reads at most LOOKUP_BYTES of them
    and says it stopped rather than "not found"; the next lookup goes on."""
    monkeypatch.setattr(taskdir_module, "LOOKUP_BYTES", 100_000)
    for n in range(5):
        (tmp_path / f"junk-{n}.yml").write_text(f"# {n}\n" + "x: 1\n" * 8_000)  # ~40 KB each
    tasks = TaskDirectory(tmp_path)
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(tasks.find(str(uuid.uuid4())))
        except taskdir_module.LookupIncomplete as err:
            assert "budget of bytes" in str(err)
            outcomes.append("stopped")
    assert outcomes == ["stopped", "stopped", None, None]  # 2 files a lookup, then all known


def test_a_final_status_is_given_once_and_only_a_final_one(tmp_path):
    """TaskDirectory.finish is the one writer of a task file's final status: a status that is
    not final is refused before anything is written, and a finished file is never moved."""
    tasks = TaskDirectory(tmp_path)
    path = tasks.dispatch(spec(build_name="x"), "dG9rZW4x")
    task_id = yaml.safe_load(path.read_text())["id"]
    before = path.read_bytes()
    try:
        tasks.finish(task_id, "in-progress", "not final")
    except ValueError as err:
        assert "not a final status" in str(err)
    else:
        raise AssertionError("a status that is not final was written")
    assert path.read_bytes() == before
    assert tasks.finish(task_id, "failed", "stage failed", output="why", by="dev")
    assert not tasks.finish(task_id, "completed", "too late")
    document = yaml.safe_load(path.read_text())
    assert document["status"] == "failed"
    assert document["result"]["completed_by"] == "dev"


def test_a_move_on_never_reopens_a_finished_file(tmp_path):
    """move_on, which settlements use, moves an open file (to a final status or not) and leaves
    a finished one as it is: the origin's `in-progress` after an approval included."""
    tasks = TaskDirectory(tmp_path)
    path = tasks.dispatch(spec(build_name="x"), "dG9rZW4x")
    task_id = yaml.safe_load(path.read_text())["id"]
    assert tasks.move_on(task_id, "in-progress", "blocks approved")
    assert tasks.move_on(task_id, "cancelled", "withdrawn")
    finished = path.read_bytes()
    assert not tasks.move_on(task_id, "in-progress", "blocks approved, late")
    assert not tasks.move_on(task_id, "completed", "too late", output="out")
    assert path.read_bytes() == finished


def test_the_actor_of_a_stage_files_move_needs_no_park():
    """A stage file's `failed`/`cancelled` names its mover (there is never a park on a stage
    file); an originating task's deciding move counts only after our park."""
    document = {"history": [{"status": "submitted", "actor": "temporal-build-worker"},
                            {"status": "failed", "actor": "dev", "note": "broke"}]}
    assert taskdir_module.mover(document, "failed", decision=False) == ("dev", "broke")
    assert taskdir_module.mover(document, "failed") == (None, None)


def test_a_copy_of_the_origin_under_another_name_decides_nothing(tmp_path):
    """#37.2: duplicates never decide: an approval by one of FILE_APPROVERS counts only while
    no other file in the directory claims the same id (the copy is named in a warning)."""
    from testbed.helpers import make_origin
    from tests.task_queue_tool import override

    origin = make_origin(tmp_path)
    tasks = TaskDirectory(tmp_path, approvers=frozenset({"alice"}))
    tasks.set_status(origin, "input-required", "1 block: the build parks")
    override(tmp_path, origin, "approved", "alice", "reviewed")
    assert tasks.read_decision(origin).status == "approved"
    copy = tmp_path / "20260101-000000-planted0.yml"
    copy.write_bytes(tasks.find(origin).read_bytes())
    assert tasks.read_decision(origin).status is None
    copy.unlink()
    assert tasks.read_decision(origin).status == "approved"


async def test_a_held_lock_is_tried_again_until_it_is_free_and_said_once(tmp_path, caplog):
    """#37.2: `patiently` returns the call's own answer once the lock is free, waits between
    tries (on_wait each time), names the lock file once, and raises after GIVE_UP_AFTER."""
    from taskdir.locks import TaskLocked
    from taskdir.waiting import patiently

    lock = tmp_path / ".locks" / "abc.lock"
    refusals = iter([TaskLocked("abc", lock)] * 3)

    def write(value: str, *, twice: bool) -> str:
        if (refused := next(refusals, None)) is not None:
            raise refused
        return value * (2 if twice else 1)

    waits: list[int] = []
    assert await patiently(write, "ok", twice=True, on_wait=lambda: waits.append(1)) == "okok"
    assert len(waits) == 3
    held = [r for r in caplog.records if r.getMessage() == "task_lock_held"]
    assert [r.lock_file for r in held] == [str(lock)]
    refusals = iter([TaskLocked("abc", lock)] * 100)
    with pytest.raises(TaskLocked):
        await patiently(write, "late", twice=False, give_up_after=0.0)
