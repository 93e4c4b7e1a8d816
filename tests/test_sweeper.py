"""The sweep against hostile or careless files: each file on its own, and a file decides only
what it can prove (#21). Real dev server, real files, the tooling's moves as it makes them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from temporalio.client import WorkflowFailureError

from config import load_config
from models import Progress
from sweeper import Sweeper
from taskdir import TaskDirectory
from testbed.agents import AgentSim
from testbed.helpers import (
    eventually,
    make_origin,
    stage_file,
    start_pipeline,
    worker_env,
    worker_without_sweep,
)
from tests.task_queue_tool import override

HOLD_PREFAB = {"build_prefab": lambda d, p: None}


def prefab_path(task_dir: Path, origin: str) -> Path | None:
    """The prefab stage file of the build whose originating task is ORIGIN (None: not yet)."""
    for path in task_dir.glob("*.yml"):
        document = yaml.safe_load(path.read_text())
        if (document.get("task_type") == "build_prefab"
                and document["payload"].get("build_name", "").endswith(origin[:8])):
            return path
    return None


async def held_at_prefab(client, cfg, dirs, name: str):
    origin = make_origin(dirs["tasks"])
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], f"{name}-{origin[:8]}",
                                  task_id=origin)
    path = await eventually(lambda: prefab_path(dirs["tasks"], origin))
    return handle, origin, path


def set_completed_by(path: Path, actor: str, token: str | None = None) -> None:
    """What the tooling writes when ACTOR completes the task (optionally with TOKEN pasted)."""
    document = yaml.safe_load(path.read_text())
    if token is not None:
        document["payload"]["task_token"] = token
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    override(path.parent, document["id"], "completed", actor, "done")


async def sweep_once(sweeper: Sweeper) -> int:
    return await sweeper.sweep()


async def alert_of(handle) -> str | None:
    return (await handle.query("progress", result_type=Progress)).alert


async def test_a_bad_token_in_one_file_never_stops_the_others(client, cfg, dirs, env,
                                                              caplog):
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, HOLD_PREFAB):
        bad, _, bad_path = await held_at_prefab(client, cfg, dirs, "bad-token")
        good, _, good_path = await held_at_prefab(client, cfg, dirs, "good")
        set_completed_by(bad_path, "claudebox", token="AAAAAAAA")
        set_completed_by(good_path, "claudebox")
        assert await sweep_once(sweeper) == 1  # the good one, whatever the bad one holds
        await eventually(lambda: _past_prefab(good))
        assert await sweep_once(sweeper) == 0  # the bad one is said once, not every pass
        assert "task token" in (await eventually(lambda: alert_of(bad)))
        assert (await bad.query("progress", result_type=Progress)).stage == "prefab"
    refused = [r for r in caplog.records if r.getMessage() == "stage_file_refused"]
    assert len(refused) == 1
    assert not [r for r in caplog.records if r.getMessage() == "sweep_failed"]
    await bad.terminate("test over")
    await good.terminate("test over")


async def _past_prefab(handle) -> bool:
    return "prefab" in (await handle.query("progress", result_type=Progress)).stages_done


async def test_a_token_pasted_from_another_build_completes_nothing(client, cfg, dirs, env):
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, HOLD_PREFAB):
        build_a, _, a_path = await held_at_prefab(client, cfg, dirs, "paste-a")
        build_b, _, b_path = await held_at_prefab(client, cfg, dirs, "paste-b")
        b_token = yaml.safe_load(b_path.read_text())["payload"]["task_token"]
        set_completed_by(a_path, "claudebox", token=b_token)
        await sweep_once(sweeper)
        alert = await eventually(lambda: alert_of(build_a))
        assert "belongs to another workflow run" in alert
        for handle in (build_a, build_b):  # neither stage moved
            assert (await handle.query("progress", result_type=Progress)).stage == "prefab"
            await handle.terminate("test over")


async def test_a_stale_token_of_the_same_run_completes_nothing(client, cfg, dirs, env, caplog):
    """security.md: the token must be the run's pending stage; the finished prefab's own
    token written back into the implement file is refused and said, not sent."""
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "stale-token")
        plan = await eventually(lambda: stage_file(dirs["tasks"], "build_plan"))
        prefab = yaml.safe_load(stage_file(dirs["tasks"], "build_prefab").read_text())
        assert prefab["status"] == "completed"  # its attempt is over
        target = yaml.safe_load(plan.read_text())["target_agent"]
        set_completed_by(plan, target, token=prefab["payload"]["task_token"])
        await sweep_once(sweeper)
        alert = await eventually(lambda: alert_of(handle))
        assert "task token is stale" in alert
        assert (await handle.query("progress", result_type=Progress)).stage == "implement"
    assert not [r for r in caplog.records if r.getMessage() == "stage_already_finished"]
    await handle.terminate("test over")


async def test_any_actor_may_cancel_through_the_tooling_without_file_approvers(client, cfg,
                                                                             dirs, env):
    """security.md: with FILE_APPROVERS empty a `cancelled` move by anyone (an operator in the
    tooling) ends the stage; a `completed` by the same actor is refused (above)."""
    assert not cfg.file_approvers
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, HOLD_PREFAB):
        handle, _, path = await held_at_prefab(client, cfg, dirs, "cancelled-by-op")
        task_id = yaml.safe_load(path.read_text())["id"]
        override(dirs["tasks"], task_id, "cancelled", "mallory", "not needed")
        assert await sweep_once(sweeper) == 1
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "Stage prefab failed" in str(caught.value.cause)
    assert "cancelled through the task queue" in str(caught.value.cause)


async def test_only_the_stage_agent_completes_through_the_tooling(client, cfg, dirs, env):
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, HOLD_PREFAB):
        handle, _, path = await held_at_prefab(client, cfg, dirs, "other-agent")
        set_completed_by(path, "security")  # another agent finishes claudebox's stage
        await sweep_once(sweeper)
        alert = await eventually(lambda: alert_of(handle))
        assert "made by security, not by the stage's agent claudebox" in alert
        assert (await handle.query("progress", result_type=Progress)).stage == "prefab"
    await handle.terminate("test over")


async def test_closed_file_channel_decides_and_completes_nothing(client, server, dirs, caplog):
    env = worker_env(server, dirs, FILE_CHANNEL="closed")
    cfg = load_config(env)
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    assert cfg.channels()["task_file_decision"] is False
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, HOLD_PREFAB):
        handle, _, path = await held_at_prefab(client, cfg, dirs, "strict")
        set_completed_by(path, "claudebox")
        await sweep_once(sweeper)
        alert = await eventually(lambda: alert_of(handle))
        assert "FILE_CHANNEL=closed" in alert
        assert (await handle.query("progress", result_type=Progress)).stage == "prefab"
    await handle.terminate("test over")


async def test_an_unreadable_stage_file_is_not_taken_for_missing(client, cfg, dirs, env):
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, HOLD_PREFAB):
        handle, _, path = await held_at_prefab(client, cfg, dirs, "too-big")
        task_id = yaml.safe_load(path.read_text())["id"]
        path.write_bytes(b"x: " + b"y" * (1024 * 1024 + 10))  # over our own reader's limit
        await sweep_once(sweeper)
        await sweep_once(sweeper)
        alert = await eventually(lambda: alert_of(handle))
    assert "cannot be read" in alert
    assert list(dirs["tasks"].glob(f"*-{task_id[:8]}.yml")) == [path]  # never re-dispatched
    assert b"task_token" not in path.read_bytes()
    assert TaskDirectory(dirs["tasks"]).unreadable_named(task_id) == [path]
    await handle.terminate("test over")


def test_bookkeeping_directories_that_are_files_are_worked_around(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    for name in (".locks", "archive", "dead-letters"):
        (tmp_path / name).write_text("not a directory\n")
    tasks = TaskDirectory(tmp_path)
    origin = make_origin(tmp_path)
    assert tasks.find(origin) is not None  # archive/ a file: looked at as empty
    assert tasks.find_dead_letter(origin) is None  # dead-letters/ a file: nothing there
    assert tasks.set_status(origin, "in-progress", "written without the lock")  # .locks a file
    with tasks.sweep_turn() as mine:
        assert mine
    said = [r for r in caplog.records if r.getMessage() == "task_dir_entry_not_a_directory"]
    assert {Path(r.path).name for r in said} == {".locks", "archive", "dead-letters"}


def test_lock_entries_of_the_wrong_shape_are_worked_around_never_followed(tmp_path, caplog):
    """A directory at the sweep turn's lock path made every sweep pass fail (silently); a
    task's lock file that is a link or a directory failed every write of that task."""
    from taskdir.locks import SWEEP_LOCK

    caplog.set_level(logging.WARNING)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "tasks"
    (root / ".locks" / SWEEP_LOCK).mkdir(parents=True)
    tasks = TaskDirectory(root)
    linked, boxed = make_origin(root), make_origin(root)
    (root / ".locks" / f"{linked}.lock").symlink_to(elsewhere / "target.lock")
    (root / ".locks" / f"{boxed}.lock").mkdir()
    assert tasks.set_status(linked, "input-required", "written unlocked, link not followed")
    assert tasks.set_status(boxed, "input-required", "written unlocked")
    for _ in range(2):
        with tasks.sweep_turn() as mine:
            assert mine  # no lock to take turns by: every sweep action is idempotent
    assert not tasks.sweep_turn_stuck(0.2)
    assert list(elsewhere.iterdir()) == []
    said = {Path(r.path).name: r.shape for r in caplog.records
            if r.getMessage() == "task_dir_entry_not_a_directory"}
    assert said == {SWEEP_LOCK: "a directory", f"{linked}.lock": "a symlink",
                    f"{boxed}.lock": "a directory"}  # each once
    assert "is a directory: sweeps not taken in turns" in tasks.locks.trouble()


async def test_a_directory_at_the_sweep_lock_is_said_on_the_build_and_the_pass_goes_on(
        client, cfg, dirs, env, caplog):
    from taskdir.locks import SWEEP_LOCK

    (dirs["tasks"] / ".locks" / SWEEP_LOCK).mkdir(parents=True)
    async with worker_without_sweep(client, cfg) as sweeper, \
            AgentSim(dirs["tasks"], env, HOLD_PREFAB):
        handle, _, path = await held_at_prefab(client, cfg, dirs, "odd-lock")

        async def said_on_the_build() -> str | None:
            await sweep_once(sweeper)  # used to raise "Is a directory" on every pass
            return await alert_of(handle)

        assert f".locks/{SWEEP_LOCK} is a directory" in await eventually(said_on_the_build)
        set_completed_by(path, "claudebox")
        assert await sweep_once(sweeper) == 1  # and the pass does its work
        await eventually(lambda: _past_prefab(handle))
    assert not [r for r in caplog.records if r.getMessage() == "sweep_failed"]
    await handle.terminate("test over")


async def test_a_held_sweep_turn_is_said_in_the_log_and_by_buildctl(client, cfg, dirs, env,
                                                                   caplog):
    """Something other than a worker holds the sweep's turn lock: the sweeper says so once
    after three passes without its turn, and `buildctl status` says so too."""
    import fcntl

    from taskdir.locks import SWEEP_LOCK
    from testbed.helpers import buildctl

    (dirs["tasks"] / ".locks").mkdir(parents=True)
    lock = open(dirs["tasks"] / ".locks" / SWEEP_LOCK, "a")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        async with worker_without_sweep(client, cfg) as sweeper, \
                AgentSim(dirs["tasks"], env, HOLD_PREFAB):
            handle, _, _ = await held_at_prefab(client, cfg, dirs, "turn")
            for _ in range(4):
                assert await sweep_once(sweeper) == 0  # never its turn
            said = [r for r in caplog.records if r.getMessage() == "sweep_turn_held"]
            assert len(said) == 1 and said[0].lock_file.endswith(SWEEP_LOCK)
            code, out, err = await buildctl(env, "status", handle.id)
            assert code == 0, err
            assert f"sweep turn lock held 3 s or more: {dirs['tasks']}/.locks/{SWEEP_LOCK}" in out
            await handle.terminate("test over")
    finally:
        lock.close()


def test_what_counts_as_an_outage():
    """Unreachable, timed out, or a frontend whose database is gone ("namespace not found"
    for the namespace the worker started with); a refusal is not an outage."""
    from temporalio.service import RPCError, RPCStatusCode

    from sweeper import outage

    def error(status: RPCStatusCode, message: str = "x") -> RPCError:
        return RPCError(message, status, b"")

    assert outage(error(RPCStatusCode.UNAVAILABLE))
    assert outage(error(RPCStatusCode.DEADLINE_EXCEEDED))
    assert outage(error(RPCStatusCode.NOT_FOUND, "Namespace default is not found."))
    assert not outage(error(RPCStatusCode.NOT_FOUND, "workflow not found"))
    assert not outage(error(RPCStatusCode.PERMISSION_DENIED))
    assert not outage(error(RPCStatusCode.INVALID_ARGUMENT))
