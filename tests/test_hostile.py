"""Hostile agents: what an agent can write never crashes, stalls, misleads or widens the worker.

One test per reproduction in docs/reliability.md ("Hostile agents"); the CLI's hostile
arguments are in test_complete_activity.py and test_buildctl.py, log tokens in test_logs.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest
import yaml
from temporalio.client import WorkflowFailureError

from config import load_config
from models import BlockDecision, Progress
from safeio.untrusted_yaml import MAX_NODES
from safeio.writing import write_private
from taskdir import TaskDirectory, dump, load
from taskdir import index as taskdir_index
from taskdir.documents import history_entry
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import (
    eventually,
    file_status,
    files_of_type,
    make_origin,
    reaches_stage,
    running_worker,
    start_pipeline,
    worker_env,
)
from testbed.processes import started_worker
from tests.task_queue_tool import override

BOMB = "- " * 100_000 + "x"  # block sequences nested 100,000 deep
BLOCKS = {"blocks": ["root in container"]}


def plant(task_dir: Path, name: str, text: str | bytes) -> Path:
    task_dir.mkdir(parents=True, exist_ok=True)
    path = task_dir / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


async def test_nesting_bombs_do_not_crash_the_worker(client, server, dirs, tmp_path):
    """The C loader used to overflow its stack on these: the worker died in a loop."""
    env = worker_env(server, dirs)
    plant(dirs["tasks"], "20260101-000000-aaaaaaaa.yml", BOMB)
    plant(dirs["tasks"], "not-a-task-name.yml", BOMB)
    os.mkfifo(dirs["tasks"] / "20260101-000000-bbbbbbbb.yml")  # must not block a lookup
    bad = {"security_audit": triage_writer(dirs["audit"], BOMB)}
    async with started_worker(env, tmp_path / "worker.log") as worker:
        async with AgentSim(dirs["tasks"], env, bad):
            doomed = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "bomb")
            progress = await eventually(lambda: _parked(doomed), 60)  # refused: parked
            assert progress.blocks == 1
            await doomed.terminate("test over")
        failures = [e.activity_task_failed_event_attributes.failure.message
                    async for e in doomed.fetch_history_events()
                    if e.HasField("activity_task_failed_event_attributes")]
        assert any("nested deeper than 64" in text for text in failures)
        async with AgentSim(dirs["tasks"], env, {
                "security_audit": triage_writer(dirs["audit"], {"flags": []})}):
            healthy = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "fine")
            assert (await healthy.result()).status == "complete"
        assert worker.process is not None and worker.process.poll() is None


async def test_fifo_triage_files_never_stall_other_builds(client, cfg, dirs, env, worker):
    """A FIFO used to hold a worker thread in open(); a handful starved all file work."""
    builds = [f"fifo-{n}" for n in range(8)]  # more than the default thread pool on 2 cores
    clean = triage_writer(dirs["audit"], {"flags": []})

    def audit(document, path):  # the FIFO builds' agents write a FIFO as their triage file
        if document["payload"]["build_name"] not in builds:
            return clean(document, path)
        os.mkfifo(Path(document["payload"]["output_dir"]) / "triage-output.yml")
        return "success", "audit.md"

    async with AgentSim(dirs["tasks"], env, {"security_audit": audit}):
        stalled = [await start_pipeline(client, cfg.task_queue, dirs["tasks"], build)
                   for build in builds]
        healthy = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "not-a-fifo")
        assert (await healthy.result()).status == "complete"
        for handle in stalled:  # refused, never read as clean: parked for the operator
            assert (await eventually(lambda h=handle: _parked(h), 60)).blocks == 1
            failures = [e.activity_task_failed_event_attributes.failure.message
                        async for e in handle.fetch_history_events()
                        if e.HasField("activity_task_failed_event_attributes")]
            assert any("not a regular file" in text for text in failures)
            await handle.terminate("test over")


async def _parked(handle) -> Progress | None:
    progress = await handle.query("progress", result_type=Progress)
    return progress if progress.stage == "wait" else None


def forged_approval(dirs: dict[str, Path]) -> tuple[dict, str]:
    """A copy of the originating task that says `approved`, and the task's id."""
    origin = next(d["id"] for d in files_of_type(dirs["tasks"], "build"))
    forged = load(TaskDirectory(dirs["tasks"]).find(origin))
    forged["status"] = "approved"
    return forged, origin


def logged(caplog: pytest.LogCaptureFixture, event: str) -> bool:
    return any(record.getMessage() == event for record in caplog.records)


async def test_a_planted_duplicate_never_approves(client, cfg, dirs, env, worker, caplog):
    """A second file claiming the originating task's id with `approved` used to win."""
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "dup")

        await reaches_stage(handle, "wait", 60)
        forged, origin = forged_approval(dirs)
        planted = plant(dirs["tasks"], f"20260101-000000-{origin[:8]}.yml",
                        dump(forged))
        await eventually(lambda: logged(caplog, "duplicate_task_id"), 30)
        assert (await handle.query("progress", result_type=Progress)).stage == "wait"
        planted.unlink()
        override(dirs["tasks"], origin, "approved", "alice", "reviewed")
        result = await handle.result()
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert summary["decided_by"] == "alice"


async def test_only_file_approvers_decide_through_the_file(client, dirs, env, caplog):
    """With FILE_APPROVERS, the implementing agent cannot approve its own build."""
    cfg = load_config({**env, "FILE_APPROVERS": "alice, bob"})
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with running_worker(client, cfg), AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "self-approve")
        origin = None

        async def announced() -> bool:
            nonlocal origin
            origin = next(d["id"] for d in files_of_type(dirs["tasks"], "build"))
            return file_status(dirs["tasks"], origin) == "input-required"

        await eventually(announced, 60)
        override(dirs["tasks"], origin, "approved", "dev", "lgtm")  # the build's own agent
        await eventually(lambda: logged(caplog, "file_decision_ignored"), 30)
        assert (await handle.query("progress", result_type=Progress)).stage == "wait"
        override(dirs["tasks"], origin, "approved", "bob", "reviewed")
        result = await handle.result()
    assert yaml.safe_load(Path(result.summary_path).read_text())["decided_by"] == "bob"


async def test_an_approval_from_before_the_build_parked_does_not_count(client, dirs, env,
                                                                      caplog):
    """FILE_APPROVERS took the newest history entry that ever set `approved`: a second build
    of a task id alice once approved was approved `decided_by: alice` when an agent set only
    `status: approved`. Only a move written after this build parked counts."""
    cfg = load_config({**env, "FILE_APPROVERS": "alice, bob"})
    origin = make_origin(dirs["tasks"])
    path = TaskDirectory(dirs["tasks"]).find(origin)
    earlier = load(path)  # an earlier build of this task: parked, approved by alice, closed
    earlier["history"] += [history_entry("input-required", "1 security block(s) on build"),
                           history_entry("approved", "fine", actor="alice"),
                           history_entry("in-progress", "blocks approved by alice"),
                           history_entry("in-progress", "submitted again", actor="operator")]
    write_private(path, dump(earlier))
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with running_worker(client, cfg), AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "old-approval",
                                      task_id=origin)
        await eventually(lambda: file_status(dirs["tasks"], origin) == "input-required", 60)
        agent_edit = load(path)
        agent_edit["status"] = "approved"  # no history entry of its own
        write_private(path, dump(agent_edit))
        await eventually(lambda: logged(caplog, "file_decision_ignored"), 30)
        assert (await handle.query("progress", result_type=Progress)).stage == "wait"
        override(dirs["tasks"], origin, "approved", "bob", "reviewed")
        result = await handle.result()
    assert yaml.safe_load(Path(result.summary_path).read_text())["decided_by"] == "bob"


async def test_a_recursive_alias_in_the_originating_task_parks_the_build(
        client, cfg, dirs, env, worker, caplog):
    """`notes: &a [*a]` in the originating task loaded fine, then writing the file recursed:
    three rounds of notifications, then the build failed. It is an unreadable file now: the
    build parks as for any unreadable origin, and a signal decides."""
    origin = make_origin(dirs["tasks"])
    path = TaskDirectory(dirs["tasks"]).find(origin)
    path.write_bytes(path.read_bytes() + b"notes: &a [*a]\n")
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "alias-origin",
                                      task_id=origin)
        await reaches_stage(handle, "wait", 60)
        assert [r for r in caplog.records  # not readable as a task: as if it were missing
                if r.getMessage().startswith("originating_task_missing")]
        await handle.signal("approve", BlockDecision(by="alice"))
        assert (await handle.result()).status == "complete"
    assert path.read_bytes().endswith(b"notes: &a [*a]\n")  # never rewritten


async def test_symlinked_audit_directory_is_not_followed(client, cfg, dirs, env, worker,
                                                         tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    dirs["audit"].mkdir(parents=True)
    (dirs["audit"] / "linked").symlink_to(elsewhere)
    async with AgentSim(dirs["tasks"], env):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "linked")
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "symlink" in str(caught.value.cause)
    assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755


def counting_parses(monkeypatch) -> list[tuple[str, int]]:
    """(name, YAML nodes) of every task-file content the directory parses."""
    parses: list[tuple[str, int]] = []
    real = taskdir_index.read_header

    def read_header(raw: bytes, name: str, max_nodes: int):
        header, nodes = real(raw, name, max_nodes)
        parses.append((name, nodes))
        return header, nodes

    monkeypatch.setattr(taskdir_index, "read_header", read_header)
    return parses


@pytest.mark.slow
def test_junk_files_are_parsed_once_per_version(tmp_path, monkeypatch):
    """Fifty junk files used to be re-parsed on every lookup miss (minutes per lookup)."""
    junk = "key: [" + ", ".join(["value"] * 20_000) + "]\n"  # ~140 KB, a list, not a task
    for n in range(50):
        plant(tmp_path, f"20260101-0000{n:02d}-{uuid.uuid4().hex[:8]}.yml", f"{junk}# {n}\n")
    parses = counting_parses(monkeypatch)
    missing = str(uuid.uuid4())
    tasks = TaskDirectory(tmp_path)
    assert eventually_found(tasks, missing) is None  # over one lookup's budget: a few
    assert len(parses) == 50  # the fallback read every file once
    assert tasks.find(missing) is None
    assert len(parses) == 50  # and remembered that none of them is a task
    origin = make_origin(tmp_path)  # a real task among the junk is still found
    assert tasks.read_decision(origin, credible_only=False).status == "in-progress"


def eventually_found(tasks: TaskDirectory, task_id: str) -> Path | None:
    """find, again while a lookup stops at its read budget (each goes further)."""
    for _ in range(20):
        try:
            return tasks.find(task_id)
        except taskdir_index.LookupIncomplete:
            continue
    raise AssertionError("lookups never finished")


@pytest.mark.slow
def test_touched_junk_is_parsed_once_and_each_lookup_is_bounded(tmp_path, monkeypatch):
    """Six ~1 MiB YAML lists not named like task files, touched between lookups, used to be
    parsed on every lookup (a fresh build's first file took 27 s; a parked build missed its
    heartbeat): each content is parsed once, a lookup parses at most its budget, a lookup
    by a task file's name reads none of them."""
    monkeypatch.setattr(taskdir_index, "LOOKUP_NODES", 150_000)
    junk = "[" + ", ".join(["v"] * 60_000) + "]\n"  # 60,001 nodes
    paths = [plant(tmp_path, f"junk-{n}.yml", junk + "#" * n) for n in range(6)]
    origin = make_origin(tmp_path)
    parses = counting_parses(monkeypatch)
    tasks = TaskDirectory(tmp_path)
    assert tasks.find_named(str(uuid.uuid4())) is None
    assert parses == []  # not named like a task file: no named lookup reads it
    for round_ in range(3):
        stamp = time.time_ns() + round_ * 1_000_000
        for path in paths:  # the agent's `touch`, between lookups
            os.utime(path, ns=(stamp, stamp))
        for _ in range(4):  # each lookup (a parked build's check) spends one budget at most
            before = len(parses)
            assert tasks.read_decision(str(uuid.uuid4())).status is None
            assert sum(nodes for _, nodes in parses[before:]) <= 150_000 + MAX_NODES
    junk_parses = [name for name, _ in parses if name.startswith("junk-")]
    assert sorted(junk_parses) == sorted(path.name for path in paths)  # once per content
    assert tasks.read_decision(origin, credible_only=False).status == "in-progress"


def test_hard_links_to_one_big_file_are_parsed_once_and_kept_small(tmp_path, monkeypatch):
    """2,000 hard links to a 1 MiB file named like a task file took a worker from 200 MB to
    2.25 GB: the header cache kept each path's full `id`. One inode is read once, and what
    is kept of it is a bounded summary."""
    body = f"id: {'x' * (1024 * 1024 - 200)}\nstatus: {'y' * 100}\n"
    first = plant(tmp_path, "20260101-000000-xxxxxxxx.yml", body)
    for n in range(200):
        os.link(first, tmp_path / f"20260101-{n:06d}-{n:08d}.yml")
    parses = counting_parses(monkeypatch)
    tasks = TaskDirectory(tmp_path)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert tasks.find(str(uuid.uuid4())) is None
        assert tasks.find("xxxxxxxx-0000-4000-8000-000000000000") is None
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(parses) == 1  # one inode, one read
    assert tasks._headers.retained <= 2 * taskdir_index.MAX_RETAINED_PER_FILE
    assert kept < 256 * 1024  # the names and the summary, not 201 MiB of ids


def test_a_file_that_keeps_a_name_is_not_parsed_again(tmp_path, monkeypatch):
    """A file renamed or linked under another name keeps its summary, however often new files
    are moved over the names it had: moving names around, without writing new content, never
    costs a parse."""
    junk = "items:\n" + "".join(f"- {n}\n" for n in range(20_000))  # costly to parse
    first = plant(tmp_path, "20260101-000000-aaaaaaaa.yml", junk)
    os.link(first, tmp_path / "20260101-000001-bbbbbbbb.yml")
    parses = counting_parses(monkeypatch)
    tasks = TaskDirectory(tmp_path)

    def lookup() -> list[str]:
        del parses[:]
        assert tasks.find(str(uuid.uuid4())) is None
        return [name for name, nodes in parses if nodes > 10_000]

    assert len(lookup()) == 1  # once, for both names
    moves = [("link", "20260101-000000-aaaaaaaa.yml"),  # a new file over one of two links
             ("rename", "20260101-000001-bbbbbbbb.yml", "20260101-000002-cccccccc.yml"),
             ("link", "20260101-000001-bbbbbbbb.yml"),  # ...over a name it was renamed from
             ("rename", "20260101-000002-cccccccc.yml", "20260101-000001-bbbbbbbb.yml")]
    for n, move in enumerate(moves * 3):
        if move[0] == "link":
            os.replace(plant(tmp_path, "new.tmp", f"id: other-{n}\n"), tmp_path / move[1])
        else:
            os.replace(tmp_path / move[1], tmp_path / move[2])
        assert lookup() == [], move


def test_a_file_rewritten_with_its_mtime_set_back_is_read_again(tmp_path):
    """Same size, same inode, the old mtime restored: the cache must not answer with the
    summary of what the file held before (the same holds for a reused inode number)."""
    path = plant(tmp_path, "20260101-000000-aaaaaaaa.yml", "id: aaaaaaaa-first\nstatus: x\n")
    tasks = TaskDirectory(tmp_path)
    assert tasks.find("aaaaaaaa-first") == path
    before = path.stat()
    with path.open("r+b") as file:  # in place: the inode stays
        file.write(b"id: aaaaaaaa-other\nstatus: x\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert tasks.find("aaaaaaaa-first") is None
    assert tasks.find("aaaaaaaa-other") == path


def test_misnamed_task_file_is_found_by_its_id(tmp_path):
    """v0.5 finds any file by its `id`; a file whose name suffix is not its id prefix too."""
    origin = make_origin(tmp_path)
    path = TaskDirectory(tmp_path).find(origin)
    shutil.move(path, tmp_path / "20260101-000000-zzzzzzzz.yml")
    assert TaskDirectory(tmp_path).find(origin) == tmp_path / "20260101-000000-zzzzzzzz.yml"



async def test_held_task_locks_never_starve_other_builds(client, cfg, dirs, env, caplog):
    """An agent holding the tooling's locks of six stage files (one per thread of a 2-core
    machine's default pool) used to stop every other build's hand-off, silently."""
    import fcntl

    from taskdir.names import stage_task_id

    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    (dirs["tasks"] / ".locks").mkdir()
    stuck = [await start_pipeline(client, cfg.task_queue, dirs["tasks"], f"stuck{n}")
             for n in range(6)]  # no worker yet: their prefab files are not written
    held = []
    for handle in stuck:
        task_id = stage_task_id(handle.result_run_id, "prefab_scaffolding")
        lock = open(dirs["tasks"] / ".locks" / f"{task_id}.lock", "a")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.append(lock)
    try:
        async with running_worker(client, cfg), AgentSim(dirs["tasks"], env,
                                                         {"build_prefab": lambda d, p: None}):
            fresh = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "fresh")
            await eventually(lambda: [d for d in files_of_type(dirs["tasks"], "build_prefab")
                                      if d["payload"]["build_name"] == "fresh"], 20)
            said = await eventually(lambda: [r for r in caplog.records
                                             if r.getMessage() == "task_lock_held"])
            assert all(r.lock_file.endswith(".lock") for r in said)
            for lock in held:
                lock.close()
            held.clear()
            await eventually(lambda: len(files_of_type(dirs["tasks"], "build_prefab")) == 7, 30)
    finally:
        for lock in held:
            lock.close()
        for handle in [*stuck, fresh]:
            await handle.terminate("test over")


async def test_an_undecodable_completion_fails_the_stage_clearly(client, cfg, dirs, env,
                                                                 worker):
    """A completion with a payload of unknown encoding used to wedge the run (failed
    activations forever, cancel ignored)."""
    import base64

    from temporalio.api.common.v1 import Payload, Payloads
    from temporalio.api.workflowservice.v1 import RespondActivityTaskCompletedRequest

    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "evil-payload")
        prefab = (await eventually(lambda: files_of_type(dirs["tasks"], "build_prefab")))[0]
        token = base64.b64decode(prefab["payload"]["task_token"])
        payload = Payload(metadata={"encoding": b"binary/evil"}, data=b"\x00\x01")
        await client.workflow_service.respond_activity_task_completed(
            RespondActivityTaskCompletedRequest(task_token=token, namespace="default",
                                                result=Payloads(payloads=[payload])))
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "the agent's completion could not be read (encoding 'binary/evil')" in str(
        caught.value.cause)
    settled = files_of_type(dirs["tasks"], "build_prefab")[0]
    assert settled["status"] == "failed"


async def test_a_planted_copy_under_another_name_is_reported(client, cfg, dirs, env, worker,
                                                             caplog):
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "dup-name")

        await reaches_stage(handle, "wait", 60)
        forged, origin = forged_approval(dirs)
        plant(dirs["tasks"], "20260101-000000-zzzzzzzz.yml", dump(forged))  # another prefix
        override(dirs["tasks"], origin, "approved", "alice", "reviewed")
        await eventually(lambda: logged(caplog, "duplicate_task_id"), 30)
        assert (await handle.query("progress", result_type=Progress)).stage == "wait"
        await handle.terminate("test over")
