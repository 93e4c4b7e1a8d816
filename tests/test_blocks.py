"""Stage 6-7: notifications, the durable wait, and each way it ends."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.deps import Deps
from config import load_config
from models import BlockDecision, Progress
from sweeper import Sweeper
from taskdir import TaskDirectory
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import (
    eventually,
    file_status,
    make_origin,
    progress_of,
    running_worker,
    start_pipeline,
    worker_env,
)
from tests.task_queue_tool import override

BLOCKS = {"blocks": [{"description": "exposes docker socket"}, "root in container"]}


def notify_script(home: Path) -> Path:
    """A SEND_MATRIX_SCRIPT that records its arguments and environment."""
    script = home / "send-matrix.sh"
    script.write_text('#!/bin/sh\nprintf "%s|%s|%s\\n" "$1" "$2" "${NODE_CHANNEL_FD:-none}" '
                      f'>> {home}/sent.txt\n')
    script.chmod(0o755)
    return home / "sent.txt"


async def parked(handle) -> Progress:
    async def waiting() -> Progress | None:
        try:  # each query bounded: one the loaded cluster leaves unanswered is asked again
            progress = await handle.query("progress", result_type=Progress,
                                          rpc_timeout=timedelta(seconds=5))
        except RPCError as err:
            if err.status not in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                raise
            return None
        return progress if progress.stage == "wait" else None

    return await eventually(waiting, 90)  # a cluster just started can take its time


def origin_status(dirs, task_id: str) -> str | None:
    return file_status(dirs["tasks"], task_id)


async def test_file_approval_resumes_with_partial_outcome(client, cfg, dirs, env, worker,
                                                          monkeypatch):
    monkeypatch.setenv("NODE_CHANNEL_FD", "3")  # PM2's IPC variable must not reach the script
    sent = notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "blocked")
        progress = await parked(handle)
        assert progress.blocks == 2 and progress.deadline is not None
        assert progress.findings == ["exposes docker socket", "root in container"]
        origin_id = handle_origin(dirs)
        await eventually(lambda: origin_status(dirs, origin_id) == "input-required")
        text = sent.read_text()
        titles = [line.split("|")[1] for line in text.splitlines() if "|[ACTION]" in line]
        # One message for the set of blocks, in their own words (#35.2, #36: bounded count).
        assert titles == ["[ACTION] blocked: 2 security block(s) need your decision"]
        assert "1. `exposes docker socket`\n2. `root in container`" in text
        assert f"Decide: buildctl.py status/approve/reject {handle.id} " in text
        assert text.count("|none\n") == 1  # PM2's IPC variable did not reach the call
        path = TaskDirectory(dirs["tasks"]).find(origin_id)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        history = yaml.safe_load(path.read_text())["history"]
        assert history[-1]["status"] == "input-required"
        assert "exposes docker socket | root in container" in history[-1]["note"]
        override(dirs["tasks"], origin_id, "approved", "operator", "looks fine")
        result = await handle.result()
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert summary["outcome"] == "partial" and summary["blocks_hit"] == 2
    assert summary["decided_by"] == "operator"  # the actor of the history entry that approved
    assert summary["reason"] == "looks fine"
    assert summary["blocks"] == ["exposes docker socket", "root in container"]
    assert "close" in summary["phases_completed"]
    assert (await progress_of(handle)).outcome == "partial"


def handle_origin(dirs) -> str:
    """The id of the single originating (operator-written) task in the task dir."""
    for path in dirs["tasks"].glob("*.yml"):
        document = yaml.safe_load(path.read_text())
        if document["source_agent"] == "operator":
            return document["id"]
    raise AssertionError("no originating task")


async def test_signal_approval(client, cfg, dirs, env, worker):
    notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "sig-approve")
        await parked(handle)
        await handle.signal("approve", BlockDecision(by="alice", reason="accepted risk"))
        result = await handle.result()
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert summary["outcome"] == "partial"
    assert summary["decided_by"] == "alice" and summary["reason"] == "accepted risk"


async def signal_decided_in(handle) -> tuple[datetime, float]:
    """When the server recorded the decision's signal, and the seconds until the workflow
    task that took it completed (both from the history: the server's own clock)."""
    signalled = None
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes") and (
                event.workflow_execution_signaled_event_attributes.signal_name == "approve"):
            signalled = event.event_time.ToDatetime(tzinfo=UTC)
        elif signalled and event.HasField("workflow_task_completed_event_attributes"):
            return signalled, (event.event_time.ToDatetime(tzinfo=UTC) - signalled)\
                .total_seconds()
    raise AssertionError("no approve signal taken in the history")


async def park_checked(handle) -> bool:
    """Whether the park's one look at the originating task file (check_block_status) ended."""
    scheduled: set[int] = set()
    async for event in handle.fetch_history_events():
        attributes = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes") and \
                attributes.activity_type.name == "check_block_status":
            scheduled.add(event.event_id)
        if event.HasField("activity_task_completed_event_attributes") and \
                event.activity_task_completed_event_attributes.scheduled_event_id in scheduled:
            return True
    return False


async def test_decision_latency_signal_under_a_second_file_within_the_interval(client, server,
                                                                               dirs):
    """operators.md: an approval signal is taken in under a second; one written into the
    originating task file is noticed within BLOCK_CHECK_INTERVAL (here 3 s; a margin for a
    sweep pass on a loaded machine)."""
    interval, margin = 3.0, 2.0
    env = worker_env(server, dirs, BLOCK_CHECK_INTERVAL=f"{interval:g}s")
    config = load_config(env)
    notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with running_worker(client, config), AgentSim(dirs["tasks"], env, behaviours):
        by_signal = await start_pipeline(client, config.task_queue, dirs["tasks"], "fast-sig")
        await parked(by_signal)
        await by_signal.signal("approve", BlockDecision(by="alice"))
        await by_signal.result()
        by_file = await start_pipeline(client, config.task_queue, dirs["tasks"], "fast-file")
        await parked(by_file)
        origin = (await (await by_file.describe()).memo())["awaiting_task_id"]
        await eventually(lambda: origin_status(dirs, origin) == "input-required")
        # the park's own look at the file is over: the decision must come by the sweep
        await eventually(lambda: park_checked(by_file))
        written = datetime.now(UTC)
        override(dirs["tasks"], origin, "approved", "operator", "ok")
        await by_file.result()
    _, taken = await signal_decided_in(by_signal)
    assert taken < 1.0, taken
    signalled, _ = await signal_decided_in(by_file)
    assert 0 <= (signalled - written).total_seconds() <= interval + margin, signalled - written


async def test_reject_update_ends_pipeline_with_summary(client, cfg, dirs, env, worker):
    notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours) as agents:
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "rejected")
        await parked(handle)
        outcome = await handle.execute_update("reject_blocks",
                                              BlockDecision(by="bob", reason="too risky"))
        assert outcome == "rejected"
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("approve_blocks", BlockDecision(by="eve"))
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert caught.value.cause.type == "BuildRejected"
    assert "rejected by bob: too risky" in str(caught.value.cause)
    summaries = list(dirs["summaries"].rglob("*.yml"))
    summary = yaml.safe_load(summaries[0].read_text())
    assert summary["outcome"] == "rejected" and "close" not in summary["phases_completed"]
    assert "build_closeout" not in [d["task_type"] for d in agents.seen]


async def test_update_refused_when_not_parked(client, cfg, dirs, env, worker):
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "not-parked")
    await eventually(lambda: list(dirs["tasks"].glob("*.yml"))[1:])
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("approve_blocks", BlockDecision(by="alice"))
    await handle.terminate("done")


async def test_deadline_times_out_cleanly(client, server, dirs):
    notify_script(dirs["home"])
    env = worker_env(server, dirs, BLOCK_WAIT_TIMEOUT="2s")
    config = load_config(env)
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with running_worker(client, config), AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, config.task_queue, dirs["tasks"], "too-late")
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert caught.value.cause.type == "BlockWaitTimedOut"
    summary = yaml.safe_load(next(dirs["summaries"].rglob("*.yml")).read_text())
    assert summary["outcome"] == "timed_out"


async def test_block_wait_survives_worker_restart(client, server, dirs):
    notify_script(dirs["home"])
    env = worker_env(server, dirs)
    config = load_config(env)
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        async with running_worker(client, config):
            handle = await start_pipeline(client, config.task_queue, dirs["tasks"], "restart")
            await parked(handle)
        # no worker now: the approval is recorded by the server and picked up on restart
        await handle.signal("approve", BlockDecision(by="carol"))
        async with running_worker(client, config):
            result = await handle.result()
    assert yaml.safe_load(Path(result.summary_path).read_text())["decided_by"] == "carol"


async def test_failed_notification_is_not_fatal(client, cfg, dirs, env, worker):
    script = dirs["home"] / "send-matrix.sh"
    script.write_text("#!/bin/sh\necho boom >&2\nexit 7\n")
    script.chmod(0o755)
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "quiet")
        await parked(handle)
        await handle.signal("approve", BlockDecision(by="alice"))
        result = await handle.result()
    assert result.status == "complete"


@pytest.mark.parametrize("damage", ["garbage", "vanish"])
async def test_malformed_or_vanishing_origin_does_not_break_the_wait(client, cfg, dirs, env,
                                                                     worker, damage, caplog):
    notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    dirs["tasks"].mkdir(parents=True, exist_ok=True)

    origin = make_origin(dirs["tasks"])
    origin_path = TaskDirectory(dirs["tasks"]).find(origin)
    if damage == "garbage":
        origin_path.write_bytes(b"\xff\xfe: [unclosed\n\x00")
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], f"origin-{damage}",
                                      task_id=origin)
        await parked(handle)
        if damage == "vanish":
            origin_path.unlink()
        sweeper = Sweeper(client, Deps.for_config(cfg))

        async def said_missing() -> list[logging.LogRecord]:
            """A sweep like the worker's: it decides nothing and does not crash; once the
            parked build is listed (visibility follows the memo), the file is reported."""
            assert await sweeper.sweep() == 0
            return [r for r in caplog.records if r.getMessage() == "originating_task_missing"]

        await eventually(said_missing, 30)
        assert await sweeper.sweep() == 0
        said = [r for r in caplog.records if r.getMessage() == "originating_task_missing"]
        assert 1 <= len(said) <= 2  # once per sweeper (the worker's and this test's), not per pass
        assert "no readable task file" in (await handle.query(
            "progress", result_type=Progress)).alert
        assert (await handle.query("progress", result_type=Progress)).stage == "wait"
        await handle.signal("approve", BlockDecision(by="alice"))
        result = await handle.result()
    assert result.status == "complete"


async def _count_sweeps(client, cfg, dirs) -> int:
    """Run two sweeps like the worker's and return how many workflows they signalled."""
    sweeper = Sweeper(client, Deps.for_config(cfg))
    return await sweeper.sweep() + await sweeper.sweep()


# A triage file that cannot prove a clean audit parks the build for the operator (#20).
UNPROVEN = {
    "findings": "findings:\n  - severity: block\n    description: Hardcoded root password\n",
    "capital": "Blocks:\n  - Hardcoded root password\nflags: []\ninfo: []\n",
}


@pytest.mark.parametrize("variant", sorted(UNPROVEN))
async def test_unreadable_triage_parks_and_reject_ends_it(client, cfg, dirs, env, worker,
                                                          variant):
    sent = notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], UNPROVEN[variant])}
    async with AgentSim(dirs["tasks"], env, behaviours) as agents:
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], f"unproven-{variant}")
        progress = await parked(handle)
        assert progress.blocks == 1 and "close" not in progress.stages_done
        assert progress.triage_refused.startswith("triage file unreadable: ")
        assert progress.findings == []  # a refused file is named as refused, not as a block
        await eventually(lambda: sent.is_file() and "[ACTION]" in sent.read_text())
        notes = sent.read_text()
        assert notes.count("[ACTION]") == 1 and "1 security block(s)" in notes
        assert "triage file unreadable" in notes
        key = "unknown key 'findings'" if variant == "findings" else "key 'Blocks'"
        assert key in notes
        await handle.execute_update("reject_blocks", BlockDecision(by="bob", reason="redo"))
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert caught.value.cause.type == "BuildRejected"
    assert "build_closeout" not in [d["task_type"] for d in agents.seen]
    summary = yaml.safe_load(next(dirs["summaries"].rglob("*.yml")).read_text())
    assert summary["outcome"] == "rejected" and summary["blocks_hit"] == 1
    assert summary["triage_file"].endswith(f"unproven-{variant}/triage-output.yml")


async def test_unreadable_triage_fixed_by_operator_then_approved_goes_on(client, cfg, dirs,
                                                                         env, worker):
    notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], UNPROVEN["capital"])}
    async with AgentSim(dirs["tasks"], env, behaviours) as agents:
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "fixed-triage")
        await parked(handle)
        triage = dirs["audit"] / "fixed-triage" / "triage-output.yml"
        triage.write_text("blocks: [Hardcoded root password]\nflags: [rotate key]\ninfo: []\n")
        await handle.execute_update("approve_blocks", BlockDecision(by="alice", reason="ok"))

        async def new_blocks_await_their_own_decision() -> bool:
            """#36.4: the approval covered the refused file, not the blocks read after it."""
            progress = await progress_of(handle)
            return progress.stage == "wait" and progress.findings == ["Hardcoded root password"]

        await eventually(new_blocks_await_their_own_decision, timeout=60)
        progress = await progress_of(handle)
        assert progress.decided_by is None and "corrected triage file" in progress.waiting_on
        await handle.execute_update("approve_blocks", BlockDecision(by="carol", reason="seen"))
        result = await handle.result()
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert summary["outcome"] == "partial" and summary["decided_by"] == "carol"
    assert summary["phases_completed"][-2:] == ["fixes", "close"]
    assert summary["blocks_hit"] == 2 and summary["flags_applied"] == 1
    assert summary["blocks"][-1] == "Hardcoded root password"
    fixes = [d for d in agents.seen if d["task_type"] == "security_fix"]
    assert len(fixes) == 1 and "rotate key" in fixes[0]["payload"]["instruction"]


async def test_unreadable_triage_approved_unfixed_closes_the_build_as_it_stands(client, cfg,
                                                                                dirs, env,
                                                                                worker):
    """pipeline.md: approving without a readable file closes the build as it stands (no
    fixes stage, the refusal the one block of record, outcome partial)."""
    notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], UNPROVEN["capital"])}
    async with AgentSim(dirs["tasks"], env, behaviours) as agents:
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "unfixed-triage")
        refusal = (await parked(handle)).triage_refused
        await handle.execute_update("approve_blocks", BlockDecision(by="alice", reason="as is"))
        result = await handle.result()
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert summary["outcome"] == "partial" and summary["decided_by"] == "alice"
    assert summary["phases_completed"] == ["prefab", "implement", "audit", "triage", "close"]
    assert summary["blocks"] == [refusal] and summary["flags_applied"] == 0
    assert [d["task_type"] for d in agents.seen][-1] == "build_closeout"
    assert "security_fix" not in [d["task_type"] for d in agents.seen]


async def test_finished_stage_files_loosened_later_are_tightened(client, cfg, dirs, env, worker):
    """The task-queue server rewrites files 0644 (e.g. a stage finished through it after the
    CLI completed it): no file of ours keeps a token readable by others, terminal or not,
    live or archived."""
    behaviours = {"security_audit": triage_writer(dirs["audit"], {})}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "loosened")
        await handle.result()
    ours = [p for p in dirs["tasks"].glob("*.yml")
            if yaml.safe_load(p.read_text())["source_agent"] == "temporal-worker"]
    assert len(ours) == 4 and all(yaml.safe_load(p.read_text())["status"] == "completed"
                                  for p in ours)
    archive = dirs["tasks"] / "archive"  # the tooling archives finished tasks there
    archive.mkdir(mode=0o700)
    ours = [*ours[:2], *(path.rename(archive / path.name) for path in ours[2:])]
    for path in ours:
        path.chmod(0o644)

    async def tightened() -> bool:
        """Sweep (a pass may find the worker's own sweeper holding the turn: poll)."""
        await _count_sweeps(client, cfg, dirs)
        return {stat.S_IMODE(p.stat().st_mode) for p in ours} == {0o600}

    await eventually(tightened, timeout=30)


@pytest.mark.parametrize("status", ["rejected", "failed"])
async def test_file_decisions_rejected_and_failed_reject_the_build(client, cfg, dirs, env,
                                                                   worker, status):
    notify_script(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], BLOCKS)}
    async with AgentSim(dirs["tasks"], env, behaviours) as agents:
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], f"file-{status}")
        await parked(handle)
        override(dirs["tasks"], handle_origin(dirs), status, "operator", "not this time")
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert caught.value.cause.type == "BuildRejected"
    assert "rejected by operator: not this time" in str(caught.value.cause)
    assert "build_closeout" not in [d["task_type"] for d in agents.seen]


@pytest.mark.parametrize("status", ["rejected", "failed", "cancelled"])
async def test_v05_block_wait_ends_with_an_error_on_a_refusing_file(cfg, dirs, status):
    """v0.5's wait_for_block_resolution (run in the SDK's activity environment) never passes
    on a refusal: it raises BuildRejected."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.legacy import V05Activities

    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    origin = make_origin(dirs["tasks"])
    override(dirs["tasks"], origin, status, "operator", "no")
    with pytest.raises(ApplicationError, match=f"was set to {status}") as caught:
        await ActivityEnvironment().run(V05Activities(Deps.for_config(cfg))
                                        .wait_for_block_resolution, "old-build", origin)
    assert caught.value.type == "BuildRejected" and caught.value.non_retryable
