"""Cutover from v0.5: runs it started are finished by our worker, and both can poll at once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from activities.deps import Deps
from activities.registry import main_activities
from config import WorkerConfig, load_config
from contract import TRIAGE_FORMAT_ERROR
from models import BlockDecision
from testbed.agents import AgentSim, default_behaviour, triage_writer
from testbed.helpers import (
    connect_client,
    eventually,
    file_status,
    files_of_type,
    make_origin,
    running_worker,
    start_pipeline,
)
from tests.task_queue_tool import override
from tests.v05_emulator import V05_WORKFLOWS

TRIAGE = {"blocks": ["docker socket mounted"], "flags": ["world-readable key"]}
HELD = {"prefab": "build_prefab", "implement": "build_plan", "audit": "security_audit",
        "fixes": "security_fix", "close": "build_closeout"}
STAGE_TYPES = ["build_prefab", "build_plan", "security_audit", "security_fix", "build_closeout"]


def v05_worker(client: Client, cfg: WorkerConfig, with_activities: bool = True) -> Worker:
    """v0.5's workflows polling our task queue (with our activities, or none of its own)."""
    deps = Deps.for_config(cfg)
    return Worker(client, task_queue=cfg.task_queue, workflows=V05_WORKFLOWS,
                  activities=main_activities(deps, client, False) if with_activities else [],
                  identity="v05-stand-in", max_cached_workflows=0)


async def start_v05_pipeline(client: Client, cfg: WorkerConfig, task_dir: Path,
                             build: str) -> tuple[WorkflowHandle, str]:
    task_id = make_origin(task_dir)
    params = {"build_name": build, "plan_path": f"/plans/{build}.md", "target_agent": "dev",
              "task_id": task_id}  # v0.5's key order
    handle = await client.start_workflow("BuildPipelineWorkflow", params,
                                         id=f"v05-{build}-{uuid.uuid4().hex[:6]}",
                                         task_queue=cfg.task_queue)
    return handle, task_id


def holding(held: set[str], audit_dir: Path):
    """Agent behaviours: task types in HELD wait; the audit writes TRIAGE."""
    audit = triage_writer(audit_dir, TRIAGE)

    def hold(kind: str):
        def behave(document, path):
            if kind in held:
                return None
            return audit(document, path) if kind == "security_audit" else default_behaviour(
                document, path)
        return behave

    return {kind: hold(kind) for kind in STAGE_TYPES}


async def wait_activity_running(handle: WorkflowHandle, heartbeated: bool = False) -> bool:
    for pending in (await handle.describe()).raw_description.pending_activities:
        if (pending.activity_type.name == "wait_for_block_resolution"
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED):
            return not heartbeated or pending.HasField("last_heartbeat_time")
    return False


async def approve_when_asked(task_dir: Path, origin: str) -> None:
    """The operator approves the originating task once the blocks are announced."""
    await eventually(lambda: file_status(task_dir, origin) == "input-required",
                     60)
    override(task_dir, origin, "approved", "operator", "reviewed")


async def task_failures(handle: WorkflowHandle) -> list[str]:
    history = await handle.fetch_history()
    return [str(e.workflow_task_failed_event_attributes.failure.message)
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


@pytest.mark.parametrize("stage", [*HELD, "wait"])
async def test_parked_v05_run_is_finished_by_our_worker(stage, client, cfg, dirs, env):
    held = {HELD.get(stage, "")}
    async with AgentSim(dirs["tasks"], env, holding(held, dirs["audit"])):
        async with v05_worker(client, cfg):
            handle, origin = await start_v05_pipeline(client, cfg, dirs["tasks"], f"adopt-{stage}")
            if stage == "wait":
                await eventually(lambda: wait_activity_running(handle))
            else:
                if stage == "close":  # v0.5 saw the approval and went on to close
                    await approve_when_asked(dirs["tasks"], origin)
                await eventually(lambda: files_of_type(dirs["tasks"], HELD[stage]))
        # v0.5 is stopped; ours takes over (a wait v0.5 was running failed with the shutdown)
        async with running_worker(client, cfg):
            held.clear()
            if stage != "close":
                await approve_when_asked(dirs["tasks"], origin)
            result = await handle.result()
    assert result["status"] == "complete"
    summary = yaml.safe_load(Path(result["summary_path"]).read_text())
    assert summary["outcome"] == "partial" and summary["blocks_hit"] == 1
    assert summary["phases_completed"] == ["prefab", "implement", "audit", "triage", "fixes",
                                           "close"]
    for kind in STAGE_TYPES:  # one live task file per stage, whoever wrote it
        assert len(files_of_type(dirs["tasks"], kind)) == 1, kind


async def test_a_v05_run_fails_on_a_refused_triage_file(client, cfg, dirs, env):
    """pipeline.md: runs v0.5 started fail on a refused triage file, as v0.5 did (no park)."""
    held = {"security_audit"}

    def audit(document, path):
        if "security_audit" in held:
            return None
        return triage_writer(dirs["audit"], "Blocks:\n  - root password\n")(document, path)

    behaviours = {**holding(set(), dirs["audit"]), "security_audit": audit}
    async with AgentSim(dirs["tasks"], env, behaviours) as agents:
        async with v05_worker(client, cfg):
            handle, _ = await start_v05_pipeline(client, cfg, dirs["tasks"], "v05-refused")
            await eventually(lambda: files_of_type(dirs["tasks"], "security_audit"))
        async with running_worker(client, cfg):
            held.clear()
            with pytest.raises(WorkflowFailureError) as caught:  # not parked: it ends
                await asyncio.wait_for(handle.result(), 60)
    cause = caught.value.cause
    while getattr(cause, "cause", None) is not None:  # the activity's own error, at the root
        cause = cause.cause
    assert cause.type == TRIAGE_FORMAT_ERROR and "triage-output.yml" in str(cause)
    assert "build_closeout" not in [d["task_type"] for d in agents.seen]
    assert (await handle.describe()).raw_description.pending_activities == []


async def test_adopted_wait_honours_a_rejection_signal(client, cfg, dirs, env):
    async with AgentSim(dirs["tasks"], env, holding(set(), dirs["audit"])):
        async with v05_worker(client, cfg):
            handle, _ = await start_v05_pipeline(client, cfg, dirs["tasks"], "adopt-reject")
            await eventually(lambda: wait_activity_running(handle))
        async with running_worker(client, cfg):
            async def parked() -> bool:
                return (await handle.query("progress")).get("stage") == "wait"

            await eventually(parked)
            await handle.signal("reject", BlockDecision(by="alice", reason="unsafe"))
            with pytest.raises(WorkflowFailureError) as caught:
                await handle.result()
    assert "rejected by alice: unsafe" in str(caught.value.cause)
    summaries = list(dirs["summaries"].rglob("*.yml"))
    assert yaml.safe_load(summaries[0].read_text())["outcome"] == "rejected"
    assert files_of_type(dirs["tasks"], "build_closeout") == []


async def test_both_workers_polling_never_wedge_nor_bypass_the_block_wait(client, server, dirs,
                                                                         env):
    cfg = load_config({**env, "MAX_CACHED_WORKFLOWS": "0"})  # every task to either worker
    v05_client = await connect_client(server.address)  # its own connection, as its own process
    async with (AgentSim(dirs["tasks"], env, holding(set(), dirs["audit"])),
                v05_worker(v05_client, cfg, with_activities=False)):
        handle, origin = await start_v05_pipeline(client, cfg, dirs["tasks"], "mixed")

        async def first_command_by_v05() -> bool:
            history = await handle.fetch_history()
            return any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                       for e in history.events)

        await eventually(first_command_by_v05)
        async with running_worker(client, cfg):
            # our wait keeps v0.5's meaning: it polls (and heartbeats) until approval
            await eventually(lambda: wait_activity_running(handle, heartbeated=True), 60)
            assert files_of_type(dirs["tasks"], "build_closeout") == []
            assert await task_failures(handle) == []
            await approve_when_asked(dirs["tasks"], origin)
            result = await handle.result()
    assert result["status"] == "complete"
    assert await task_failures(handle) == []
    assert len(files_of_type(dirs["tasks"], "build_closeout")) == 1


async def test_parked_v05_plan_is_finished_by_our_worker(client, cfg, dirs, env):
    plan = {"plan_name": "adopt-plan", "phases": [
        {"number": 1, "agent_type": "builder", "description": "one", "context_refs": []},
        {"number": 2, "agent_type": "reviewer", "description": "two", "context_refs": []}]}

    def phase_two_waits(document, path):
        return None if document["payload"]["phase_number"] == 2 and held else default_behaviour(
            document, path)

    held = True
    async with AgentSim(dirs["tasks"], env, {"build_phase": phase_two_waits}):
        async with v05_worker(client, cfg):
            handle = await client.start_workflow("BuildPlanWorkflow", plan, id="v05-plan",
                                                 task_queue=cfg.task_queue)
            await eventually(lambda: len(files_of_type(dirs["tasks"], "build_phase")) == 2)
        async with running_worker(client, cfg):
            held = False
            result = await handle.result()
    assert result == {"status": "complete", "phases_run": 2}


async def test_an_adopted_wait_keeps_v05s_seven_day_deadline(client, cfg, dirs, env):
    """The deadline runs from when v0.5 began the wait, not from when we took it over."""
    from datetime import timedelta

    from models import Progress

    async with AgentSim(dirs["tasks"], env, holding(set(), dirs["audit"])):
        async with v05_worker(client, cfg):
            handle, _ = await start_v05_pipeline(client, cfg, dirs["tasks"], "adopt-deadline")
            await eventually(lambda: wait_activity_running(handle))
        async with running_worker(client, cfg):
            async def parked() -> Progress | None:
                progress = await handle.query("progress", result_type=Progress)
                return progress if progress.stage == "wait" else None

            progress = await eventually(parked)
            history = await handle.fetch_history()
            began = next(e.event_time.ToDatetime(tzinfo=progress.deadline.tzinfo)
                         for e in history.events
                         if e.activity_task_scheduled_event_attributes.activity_type.name ==
                         "wait_for_block_resolution")
            assert abs(progress.deadline - began - timedelta(days=7)) < timedelta(seconds=2)
            await handle.terminate("test over")


async def test_a_v05_worker_fails_our_runs_tasks_until_ours_takes_them(client, cfg, dirs, env):
    """v0.5 cannot replay our version marker: its workflow task fails (and is retried), and
    the run goes on as soon as our worker polls again."""
    hold = {"on": True}
    agents = {"build_prefab": lambda d, p: None if hold["on"] else ("success", "scaffolded")}
    async with AgentSim(dirs["tasks"], env, agents):
        async with running_worker(client, cfg):
            handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "marked")
            await eventually(lambda: files_of_type(dirs["tasks"], "build_prefab"))
        async with v05_worker(client, cfg):
            await handle.signal("attention", "a new event: a workflow task for v0.5")
            failures = await eventually(lambda: task_failures(handle), 60)
        assert failures  # v0.5 took the task and failed it; nothing else happened
        assert files_of_type(dirs["tasks"], "build_plan") == []
        async with running_worker(client, cfg):
            hold["on"] = False
            await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"), 60)
        await handle.terminate("test over")
