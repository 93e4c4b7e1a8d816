"""Native in the task-queue tooling: the TASK-QUEUE.md rules our files rely on, then whole
pipelines where agents and the operator act only through the tooling's moves."""

from __future__ import annotations

import asyncio
import stat
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from temporalio.client import WorkflowFailureError

from config import load_config
from models import Progress
from taskdir import TaskDirectory, TaskSpec, TaskStyle, dump, utc_now
from taskdir.locks import TaskLocked
from taskdir.waiting import patiently
from testbed.helpers import eventually, make_origin, running_worker, start_pipeline
from tests.task_queue_tool import (
    STATUSES,
    TASK_TYPES,
    WORKFLOW_MODES,
    MoveRefused,
    TaskQueueTool,
)

NATIVE = TaskStyle(vocabulary="task-queue", agent_map={"security-agent": "security",
                                                       "claudebox": "developer"})


def spec(kind: str = "security_audit", agent: str = "security-agent", **extra) -> TaskSpec:
    return TaskSpec(task_id=str(uuid.uuid4()), target_agent=agent, task_type=kind,
                    summary="Security audit for build 'x'",
                    payload={"build_name": "x", "instruction": "do it"},
                    originating_task_id=str(uuid.uuid4()),
                    context_refs=("/plans/x.md", "relative/ignored.md"),
                    request="/audit-requests/x/request.md", **extra)


# -- file-level rules ----------------------------------------------------------------------

def test_native_vocabulary_is_routed_not_dead_lettered(tmp_path):
    tasks = TaskDirectory(tmp_path, NATIVE)
    path = tasks.dispatch(spec(), "dG9r")
    document = yaml.safe_load(path.read_text())
    assert document["task_type"] == "audit" and document["task_type"] in TASK_TYPES
    assert document["workflow_mode"] in WORKFLOW_MODES
    assert document["target_agent"] == "security"
    payload = document["payload"]
    assert payload["stage"] == "security_audit"
    assert payload["context_refs"] == ["/plans/x.md"]  # absolute paths only
    assert payload["priority"] == "normal" and payload["description"]
    assert payload["request"] == "/audit-requests/x/request.md"
    assert payload["originating_task_id"]
    assert list(document)[:9] == ["id", "created", "source_agent", "target_agent", "task_type",
                                  "risk_level", "requires_approval", "workflow_mode", "status"]
    assert TaskQueueTool(tmp_path).dispatcher_tick() == [document["id"]]
    assert TaskQueueTool(tmp_path).read(document["id"])["status"] == "approved"


def test_upstream_vocabulary_is_what_the_dispatcher_cannot_route(tmp_path):
    path = TaskDirectory(tmp_path).dispatch(spec(), "dG9r")
    document = yaml.safe_load(path.read_text())
    assert document["task_type"] == "security_audit" and "workflow_mode" not in document
    TaskQueueTool(tmp_path).dispatcher_tick()
    assert TaskQueueTool(tmp_path).read(document["id"])["status"] == "routing-failed"


@pytest.mark.parametrize("style", [TaskStyle(), NATIVE], ids=["upstream", "task-queue"])
def test_timestamps_are_yaml_timestamps(tmp_path, style):
    tasks = TaskDirectory(tmp_path, style)
    path = tasks.dispatch(spec(), "dG9r")
    task_id = yaml.safe_load(path.read_text())["id"]
    tasks.set_status(task_id, "completed", "done", output="/r.md", by="dev")
    document = yaml.safe_load(path.read_text())  # the tooling's loader
    assert isinstance(document["created"], datetime) and document["created"].tzinfo
    assert all(isinstance(h["timestamp"], datetime) for h in document["history"])
    assert isinstance(document["result"]["completed_at"], datetime)
    assert "'20" not in path.read_text()  # nothing quoted


def test_rewrites_keep_foreign_keys_parked_and_created(tmp_path):
    tasks, tool = TaskDirectory(tmp_path, NATIVE), TaskQueueTool(tmp_path)
    task = spec()
    path = tasks.dispatch(task, "b2xk")
    created = yaml.safe_load(path.read_text())["created"]
    tool.park(task.task_id, "alice", "not now")
    document = yaml.safe_load(path.read_text())
    document["retry_policy"] = {"retry_count": 2, "next_retry_at": None}
    document["amendments"] = [{"by": "alice", "text": "also check the socket"}]
    document["payload"]["operator_note"] = "kept"
    path.write_bytes(dump(document))
    assert tasks.dispatch(task, "bmV3", "attempt 2: fresh task token") == path
    after = yaml.safe_load(path.read_text())
    assert after["status"] == "parked" and after["parked_from"] == "submitted"
    assert after["retry_policy"]["retry_count"] == 2 and after["amendments"]
    assert after["payload"]["operator_note"] == "kept"
    assert after["payload"]["task_token"] == "bmV3" and after["created"] == created
    assert [h["status"] for h in after["history"]] == ["submitted", "parked", "parked"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_rewrite_takes_the_tooling_lock_and_waits_without_a_thread(tmp_path):
    tasks = TaskDirectory(tmp_path, NATIVE)
    task = spec()
    tasks.dispatch(task, "dG9r")
    tool = TaskQueueTool(tmp_path)
    with tool._locked(task.task_id):  # the task-queue server is mid-rewrite
        with pytest.raises(TaskLocked, match=f"{task.task_id}.lock"):
            tasks.set_status(task.task_id, "completed", "done")  # gives its thread back
        assert tool.read(task.task_id)["status"] == "submitted"  # nothing written meanwhile



async def test_a_held_lock_is_waited_for_in_asyncio_and_reported_once(tmp_path, caplog):
    tasks = TaskDirectory(tmp_path, NATIVE)
    task = spec()
    tasks.dispatch(task, "dG9r")
    tool = TaskQueueTool(tmp_path)
    held = tool._locked(task.task_id)
    held.__enter__()
    writer = asyncio.create_task(patiently(tasks.set_status, task.task_id, "completed", "d"))
    await eventually(lambda: any(r.getMessage() == "task_lock_held" for r in caplog.records))
    assert not writer.done() and tool.read(task.task_id)["status"] == "submitted"
    held.__exit__(None, None, None)
    assert await asyncio.wait_for(writer, 10)
    assert tool.read(task.task_id)["status"] == "completed"
    said = [r for r in caplog.records if r.getMessage() == "task_lock_held"]
    assert len(said) == 1 and said[0].lock_file.endswith(f"{task.task_id}.lock")


def test_finished_tasks_are_never_rewritten(tmp_path):
    tasks, tool = TaskDirectory(tmp_path, NATIVE), TaskQueueTool(tmp_path)
    task = spec()
    tasks.dispatch(task, "dG9r")
    tool.dispatcher_tick()
    tool.claim(task.task_id, "security")
    tool.complete(task.task_id, "security", "/audit/x/audit.md")
    assert not tasks.set_status(task.task_id, "cancelled", "late", unless_terminal=True)
    assert tool.read(task.task_id)["status"] == "completed"


def test_a_loosened_token_file_is_tightened(tmp_path):
    tasks, tool = TaskDirectory(tmp_path, NATIVE), TaskQueueTool(tmp_path)
    task = spec()
    path = tasks.dispatch(task, "dG9r")
    tool.dispatcher_tick()  # the tooling rewrites it with its default mode
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert tasks.tighten(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not tasks.tighten(path)


def test_decisions_carry_the_history_entrys_actor_and_note(tmp_path):
    origin = make_origin(tmp_path, status="pending-approval")
    TaskDirectory(tmp_path).set_status(origin, "pending-approval", "blocks")  # the build parks
    TaskQueueTool(tmp_path).approve(origin, "alice", "risk accepted")
    decision = TaskDirectory(tmp_path).read_decision(origin)
    assert (decision.status, decision.by, decision.reason) == (
        "approved", "alice", "risk accepted")


# -- whole pipelines through the tooling's moves ------------------------------------------

class Platform:
    """The tooling's dispatcher plus agents and an operator who only use its moves."""

    def __init__(self, root: Path, audit_dir: Path, triage: dict, operator: str = "approve"):
        self.tool = TaskQueueTool(root)
        self.audit_dir, self.triage, self.operator = audit_dir, triage, operator
        self.seen: set[str] = set()
        self.statuses: set[str] = set()
        self.tick_dispatcher = True

    async def run(self, origin: str) -> None:
        while True:
            if self.tick_dispatcher:
                self.tool.dispatcher_tick()
            for task in self.tool.tasks():
                self.statuses.add(task["status"])
                if task.get("source_agent") != "temporal-worker":
                    continue
                if task["status"] == "submitted" and not self.tick_dispatcher:
                    self.tool.approve(task["id"], "alice", "go")  # operator approves by hand
                elif task["status"] == "approved" and task["id"] not in self.seen:
                    self.seen.add(task["id"])
                    try:
                        self.work(task)
                    except (MoveRefused, KeyError, OSError):
                        self.seen.discard(task["id"])
            origin_task = next((t for t in self.tool.tasks() if t["id"] == origin), None)
            if origin_task and origin_task["status"] in ("pending-approval", "input-required"):
                if self.operator == "approve":
                    if origin_task["status"] == "pending-approval":
                        self.tool.approve(origin, "alice", "risk accepted")
                    else:  # upstream: leaving input-required is an operator override
                        self.tool._move(origin, "approved", "alice", "risk accepted", None)
                else:
                    self.tool.cancel(origin, "alice", "too risky")
            await asyncio.sleep(0.05)

    def work(self, task: dict) -> None:
        agent, stage = task["target_agent"], task["payload"].get("stage", task["task_type"])
        self.tool.claim(task["id"], agent)
        if stage == "security_audit":
            out = Path(task["payload"]["output_dir"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "triage-output.yml").write_text(yaml.safe_dump(
                {"blocks": [], "flags": [], "info": [], **self.triage}))
        output = f"/reports/{stage}.md" if stage == "build_closeout" else f"{stage} done"
        self.tool.complete(task["id"], agent, output)


TRIAGE = {"blocks": ["docker socket"], "flags": ["world-readable key"], "info": []}


async def test_task_queue_mode_pipeline_through_the_tooling_only(client, dirs, env):
    cfg = load_config({**env, "TASK_VOCABULARY": "task-queue",
                       "AGENT_MAP": "security-agent=security,claudebox=developer"})
    platform = Platform(dirs["tasks"], dirs["audit"], TRIAGE)
    async with running_worker(client, cfg):
        dirs["tasks"].mkdir(parents=True, exist_ok=True)
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "native")
        origin = next(t["id"] for t in platform.tool.tasks() if t["task_type"] == "build")
        agents = asyncio.create_task(platform.run(origin))
        try:
            result = await asyncio.wait_for(handle.result(), 120)
        finally:
            agents.cancel()
    assert "routing-failed" not in platform.statuses and platform.statuses <= set(STATUSES)
    ours = [t for t in platform.tool.tasks() if t["source_agent"] == "temporal-worker"]
    assert sorted(t["payload"]["stage"] for t in ours) == sorted(
        ["build_prefab", "build_plan", "security_audit", "security_fix", "build_closeout"])
    assert all(t["status"] == "completed" and t["result"]["output"] for t in ours)
    assert all(t["payload"]["originating_task_id"] == origin for t in ours)
    final = platform.tool.read(origin)
    assert final["status"] == "completed" and final["result"]["output"] == result.summary_path
    moves = [h["status"] for h in final["history"]]
    assert moves[-3:] == ["approved", "in-progress", "completed"]
    assert "pending-approval" in moves
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert (summary["decided_by"], summary["reason"]) == ("alice", "risk accepted")


async def test_upstream_mode_pipeline_rejected_by_a_tooling_cancel(client, cfg, dirs, env,
                                                                   worker):
    platform = Platform(dirs["tasks"], dirs["audit"], TRIAGE, operator="cancel")
    platform.tick_dispatcher = False  # upstream files are not the dispatcher's
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "upstream-tq")
    origin = next(t["id"] for t in platform.tool.tasks() if t["task_type"] == "build")
    agents = asyncio.create_task(platform.run(origin))
    try:
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(handle.result(), 120)
    finally:
        agents.cancel()
    assert "rejected by alice: too risky" in str(caught.value.cause)
    ours = [t for t in platform.tool.tasks() if t["source_agent"] == "temporal-worker"]
    assert {t["status"] for t in ours} == {"completed"}
    assert platform.tool.read(origin)["status"] == "cancelled"  # the operator's, kept
    summaries = list(dirs["summaries"].rglob("*.yml"))
    assert yaml.safe_load(summaries[0].read_text())["decided_by"] == "alice"


async def test_dead_lettered_stage_is_reported_not_recreated_and_requeue_works(
        client, cfg, dirs, env, worker, caplog):
    from temporalio.api.sdk.v1 import WorkflowMetadata

    sent = dirs["home"] / "sent.txt"
    script = dirs["home"] / "send-matrix.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$2" >> {sent}\n')
    script.chmod(0o755)
    tool = TaskQueueTool(dirs["tasks"])
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "dead")
    await eventually(lambda: any(t["task_type"] == "build_prefab" for t in tool.tasks()))
    prefab = next(t["id"] for t in tool.tasks() if t["task_type"] == "build_prefab")
    tool.dispatcher_tick(route_failures_until_dead=True)  # upstream vocabulary: dead-lettered

    async def alerted() -> bool:
        progress = await handle.query("progress", result_type=Progress)
        return bool(progress.alert and "dead-letters" in progress.alert)

    await eventually(alerted)
    assert not any(t["id"] == prefab for t in tool.tasks())  # never silently re-created
    said = [r for r in caplog.records if r.getMessage() == "stage_dead_lettered"]
    assert said and said[0].task_id == prefab  # the log line
    await eventually(lambda: sent.exists() and "stage task dead-lettered" in sent.read_text())
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "**Attention:** task" in metadata.current_details  # the Web UI's note
    assert "dead-letters/" in metadata.current_details
    tool.requeue(prefab, "alice")
    tool._move(prefab, "approved", "alice", "route by hand", None)
    tool.claim(prefab, "claudebox")
    tool.complete(prefab, "claudebox", "scaffolded")

    async def implementing() -> bool:
        return "prefab" in (await handle.query("progress", result_type=Progress)).stages_done

    await eventually(implementing)
    await handle.terminate("done")


async def test_stage_failed_through_the_tooling_fails_the_stage(client, cfg, dirs, env, worker):
    tool = TaskQueueTool(dirs["tasks"])
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "tq-fail")
    await eventually(lambda: any(t["task_type"] == "build_prefab" for t in tool.tasks()))
    prefab = next(t["id"] for t in tool.tasks() if t["task_type"] == "build_prefab")
    tool.fail(prefab, "claudebox", "plan file is empty")
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert "plan file is empty" in str(caught.value.cause)
    origin = next(t for t in tool.tasks() if t["task_type"] == "build")
    assert origin["status"] == "failed" and "plan file is empty" in origin["history"][-1]["note"]


async def test_loosened_stage_file_is_0600_again_within_a_sweep(client, cfg, dirs, env,
                                                                worker):
    tool = TaskQueueTool(dirs["tasks"])
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "loose")
    await eventually(lambda: any(t["task_type"] == "build_prefab" for t in tool.tasks()))
    prefab = next(t["id"] for t in tool.tasks() if t["task_type"] == "build_prefab")
    tool.park(prefab, "alice")  # rewritten by the tooling: 0644 with the token inside
    path = tool.path_of(prefab)
    await eventually(lambda: stat.S_IMODE(path.stat().st_mode) == 0o600)
    assert tool.read(prefab)["status"] == "parked"
    await handle.terminate("done")


async def test_the_dispatchers_workflow_task_starts_a_pipeline(client, cfg, dirs, env, worker,
                                                               caplog):
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    origin = make_origin(dirs["tasks"])
    payload = {"build_name": "from-dispatcher", "plan_path": "/plans/p.md", "task_id": origin,
               "target_agent": "dev", "description": "build it", "priority": "high",
               "context_refs": []}
    handle = await client.start_workflow(  # exactly the dispatcher's input shape
        "BuildPipelineWorkflow", {"plan_name": "from-dispatcher", **payload},
        id=f"from-dispatcher-{origin[:8]}", task_queue=cfg.task_queue)
    tool = TaskQueueTool(dirs["tasks"])
    await eventually(lambda: any(t["task_type"] == "build_prefab" for t in tool.tasks()))
    assert any(r.getMessage().startswith("input_keys_ignored") for r in caplog.records)
    await handle.terminate("done")


def test_make_origin_writes_a_native_task(tmp_path):
    origin = make_origin(tmp_path)
    document = TaskQueueTool(tmp_path).read(origin)
    assert isinstance(document["created"], datetime)
    assert document["task_type"] in TASK_TYPES and document["status"] in STATUSES
    assert utc_now() >= document["created"]
