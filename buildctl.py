#!/usr/bin/env python3
"""Operator CLI: start, list, inspect, approve, reject and cancel builds without writing JSON."""

from __future__ import annotations

import bootstrap  # first: third-party imports below need the project's interpreter

bootstrap.ensure_dependencies("buildctl", __file__)
bootstrap.lighten_sdk_import()

import argparse
import asyncio
import contextlib
import json
import logging
import os
import stat
import sys
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.client import WorkflowExecution as ListedRun
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config import WorkerConfig, load_config
from connection.client import connect
from connection.pollers import live_pollers, queue_pollers
from connection.rpc_exits import rpc_exit
from connection.search_attributes import BUILD_NAME
from contract import BUILDS_QUERY, EARLIER_MARKERS, PIPELINE, RUNNING_BUILDS_QUERY, Memo
from exceptions import Exit, ExitError, TemporalUnreachable, TemporalWorkerError
from models import (
    BlockDecision,
    BuildPipelineInput,
    BuildPlanInput,
    Progress,
    describe_errors,
    plan_path_problem,
)
from safeio import untrusted_yaml
from safeio.inert import one_line
from taskdir import TaskDirectory
from taskdir.locks import SWEEP_LOCK
from workflows.base import BuildWorkflowBase
from workflows.build_pipeline import BuildPipelineWorkflow
from workflows.build_plan import BuildPlanWorkflow

T = TypeVar("T")
MAX_PLAN_BYTES = 1024 * 1024
# A live worker answers a query in milliseconds; without one the server holds it for seconds.
QUERY_WAIT = timedelta(seconds=1)
NO_WORKER = "no worker answered (is worker.py running?)"
EARLIER_RUN = "started by 0.x: finish it on a 0.x worker (docs/upgrading.md)"
# What a query that nobody answered fails with (timeout, or the server's "no poller seen").
UNANSWERED = {RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED,
              RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.UNAVAILABLE}
SHOWN = 20  # findings listed per kind by `status`; the rest are counted
LOOKUPS = 16  # server calls one command makes at once (list, the origin check)
# The start options as the operator types them, and rules said in words (not patterns).
OPTIONS = {"build_name": "--build-name", "plan_path": "--plan-path", "task_id": "--task-id",
           "target_agent": "--agent"}
IN_WORDS = {("build_name", "string_pattern_mismatch"):
            "must be lower-case letters, digits and '-', starting with a letter or digit"}


def shown(text: object, limit: int = 500) -> str:
    """Agent-written (or any server-held) text as one inert terminal line: no escape sequence,
    carriage return or bidi override an agent wrote can move the cursor or forge a line."""
    return one_line(text, limit)


def status_name(status: WorkflowExecutionStatus | None) -> str:
    """The run's status in our one spelling (the server says CANCELED; we say cancelled)."""
    if status is None:
        return "unknown"
    name = status.name.lower()
    return "cancelled" if name == "canceled" else name


async def bounded(calls: list[Awaitable[T]], width: int = LOOKUPS) -> list[T]:
    """CALLS run at most WIDTH at a time (one server, many builds), in order."""
    gate = asyncio.Semaphore(width)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


def ui_link(config: WorkerConfig, workflow_id: str) -> str:
    base = config.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{config.client.namespace}/workflows/{workflow_id}"


def validation_message(err: ValidationError) -> str:
    return f"invalid {describe_errors(err)}"


def check_origin(config: WorkerConfig, task_id: str) -> None:
    """Refuse a start whose originating task has no file: its decisions could never be made."""
    try:
        found = TaskDirectory(config.task_dir).find(task_id)
    except (OSError, ValueError):
        found = None
    if found is None:
        raise ExitError(f"originating task {task_id} has no task file in {config.task_dir}; "
                        f"write it first (README: The originating task) or pass "
                        f"--without-origin-file", Exit.REFUSED)


def plan_file_problem(plan_path: str) -> str | None:
    """Why the plan cannot be read here (None: it can): its stages would only fail later."""
    try:
        info = os.stat(plan_path)
    except FileNotFoundError:
        return f"{plan_path} does not exist"
    except OSError as err:
        return f"{plan_path} cannot be read: {err.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{plan_path} is not a regular file"
    try:
        os.close(os.open(plan_path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as err:
        return f"{plan_path} cannot be read: {err.strerror}"
    return None


def argument_problems(err: ValidationError | None, plan_path: str) -> list[str]:
    """Every invalid start argument, named as typed and said in words."""
    problems = []
    for error in err.errors() if err else []:
        field = str(error["loc"][0]) if error["loc"] else "input"
        why = IN_WORDS.get((field, error["type"])) or error["msg"].removeprefix("Value error, ")
        problems.append(f"{OPTIONS.get(field, field)}: {why}")
    if not any(problem.startswith(OPTIONS["plan_path"]) for problem in problems):
        path_problem = plan_path_problem(plan_path)
        problem = (path_problem.split(": ", 1)[-1] if path_problem
                   else plan_file_problem(plan_path))
        if problem:
            problems.append(f"{OPTIONS['plan_path']}: {problem}")
    return problems


def start_input(args: argparse.Namespace) -> BuildPipelineInput:
    """The start arguments as the workflow's input, or one line naming every invalid one."""
    params, error = None, None
    try:
        params = BuildPipelineInput(build_name=args.build_name, plan_path=args.plan_path,
                                    task_id=args.task_id, target_agent=args.agent)
    except ValidationError as err:
        error = err
    problems = argument_problems(error, args.plan_path)
    if problems or params is None:
        raise ExitError("invalid arguments: " + "; ".join(problems), Exit.INVALID)
    return params


async def started_origin(client: Client, workflow_id: str) -> str | None:
    """The originating task a running pipeline was started for (its first event's input)."""
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        values = await client.data_converter.decode(payloads) if payloads else []
        first = values[0] if values else None
        return str(first.get("task_id")) if isinstance(first, dict) else None
    return None


async def origin_holders(client: Client, config: WorkerConfig, task_id: str) -> list[str]:
    """The running pipelines that already hold TASK_ID as their originating task."""
    query = RUNNING_BUILDS_QUERY.format(task_queue=config.build_queue)
    ids = [run.id async for run in client.list_workflows(query)
           if run.workflow_type == PIPELINE]
    origins = await bounded([started_origin(client, workflow_id) for workflow_id in ids])
    return [workflow_id for workflow_id, origin in zip(ids, origins, strict=True)
            if origin == task_id]


async def check_shared_origin(client: Client, config: WorkerConfig, task_id: str) -> None:
    """Refuse a second running build on one originating task: both would decide through it."""
    holders = await origin_holders(client, config, task_id)
    if holders:
        raise ExitError(f"originating task {task_id} is held by running build "
                        f"{shown(holders[0])}; pass --allow-shared-origin to start another "
                        f"on it", Exit.REFUSED)


async def cmd_start(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    params = await asyncio.to_thread(start_input, args)
    if not args.without_origin_file:
        await asyncio.to_thread(check_origin, config, params.task_id)
    if not args.allow_shared_origin:
        await check_shared_origin(client, config, params.task_id)
    workflow_id = args.id or f"build-{params.build_name}-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        BuildPipelineWorkflow.run, params.model_dump(), id=workflow_id,
        task_queue=config.task_queue,
        static_summary=f"Build {params.build_name} for agent {params.target_agent}",
        static_details=f"Plan: {params.plan_path}\n\nOriginating task: {params.task_id}")
    return {"workflow_id": workflow_id, "ui": ui_link(config, workflow_id)}


async def cmd_plan(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    try:
        raw = untrusted_yaml.load_file(Path(args.file), MAX_PLAN_BYTES)
        plan = BuildPlanInput.model_validate(raw)
    except OSError as err:
        raise ExitError(f"cannot read {args.file}: {err.strerror}", Exit.INVALID) from None
    except untrusted_yaml.InputRefused as err:
        raise ExitError(f"{args.file}: {err}", Exit.INVALID) from None
    except yaml.YAMLError:
        raise ExitError(f"{args.file} is not valid UTF-8 YAML", Exit.INVALID) from None
    except ValidationError as err:
        raise ExitError(validation_message(err), Exit.INVALID) from None
    workflow_id = args.id or f"plan-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        BuildPlanWorkflow.run, plan.model_dump(), id=workflow_id, task_queue=config.task_queue,
        static_summary=f"Plan {plan.plan_name}: {len(plan.phases)} phase(s)")
    return {"workflow_id": workflow_id, "ui": ui_link(config, workflow_id)}


@dataclass
class Answer:
    """The run's `progress` query: its answer, or whether no worker answered it."""

    progress: Progress | None = None
    no_worker: bool = False


async def worker_polls(client: Client, config: WorkerConfig) -> bool:
    """Whether the server saw a worker poll the builds' queue lately (none: do not ask)."""
    return await live_pollers(client, config.build_queue) > 0


async def _progress(client: Client, workflow_id: str, polled: bool = True) -> Answer:
    """Ask the worker, briefly: without one, the server would hold the question for seconds."""
    if not polled:
        return Answer(no_worker=True)
    try:
        return Answer(await client.get_workflow_handle(workflow_id).query(
            BuildWorkflowBase.progress, rpc_timeout=QUERY_WAIT))
    except RPCError as err:
        return Answer(no_worker=err.status in UNANSWERED)
    except Exception:  # not one of ours (no such query), or an answer we cannot read
        return Answer()


async def earlier_release(client: Client, workflow_id: str) -> bool:
    """Whether a 0.x release started this run (its first marker is one of theirs): a 1.0
    worker does not continue it, so it is drained on a 0.x worker before the upgrade."""
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events(page_size=8):
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            data = marker.details["patch-data"].payloads[0].data if \
                marker.marker_name == "core_patch" and "patch-data" in marker.details else b""
            with contextlib.suppress(ValueError, AttributeError):
                return json.loads(data).get("id") in EARLIER_MARKERS
            return False
        if event.event_id > 8:
            break
    return False


async def list_row(client: Client, execution: ListedRun,
                   polled: bool) -> tuple[dict[str, Any], bool]:
    """One build for `list`, and whether a worker was asked and did not answer."""
    status = status_name(execution.status)
    memo = await execution.memo()
    answer = await _progress(client, execution.id, polled)
    progress = answer.progress
    stage = progress.stage if progress and status == "running" else None
    if status == "running" and stage is None and memo.get(Memo.AWAIT):
        stage = "wait"  # the server's memo says the run is parked on a decision
    outcome = (progress.outcome if progress else None) if status != "running" else None
    if status == "running" and await earlier_release(client, execution.id):
        stage = EARLIER_RUN
    return ({"workflow_id": execution.id, "type": execution.workflow_type,
             "build_name": execution.typed_search_attributes.get(BUILD_NAME),
             "status": status, "stage": stage, "outcome": outcome,
             "waiting": bool(memo.get(Memo.AWAIT)) and status == "running",
             "started": execution.start_time.isoformat()}, answer.no_worker)


async def cmd_list(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    narrowed = args.running or args.waiting or args.started_by_0x
    query = (RUNNING_BUILDS_QUERY if narrowed else BUILDS_QUERY).format(
        task_queue=config.build_queue)
    executions = [execution async for execution in client.list_workflows(
        query, limit=None if args.waiting else args.limit)]
    if args.waiting:  # parked on a decision: the run's memo names the task it waits on
        executions = [e for e in executions if (await e.memo()).get(Memo.AWAIT)][:args.limit]
    polled = await worker_polls(client, config)
    answers = await bounded([list_row(client, execution, polled) for execution in executions])
    if args.started_by_0x:
        answers = [answer for answer in answers if answer[0]["stage"] == EARLIER_RUN]
    result: dict[str, Any] = {"workflows": [row for row, _ in answers]}
    if any(no_worker for _, no_worker in answers):
        result["note"] = NO_WORKER
    return result


async def cmd_status(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    description = await client.get_workflow_handle(args.workflow_id).describe()
    result: dict[str, Any] = {"workflow_id": args.workflow_id,
                              "type": description.workflow_type,
                              "status": status_name(description.status),
                              "ui": ui_link(config, args.workflow_id)}
    running = result["status"] == "running"
    polled = await worker_polls(client, config)
    answer, facts = await asyncio.gather(
        _progress(client, args.workflow_id, polled),
        running_facts(config, description) if running else ended_facts(client, description))
    result.update(facts)
    memo = await description.memo()
    if answer.progress is not None:
        result["progress"] = shown_progress(answer.progress, running)
    elif answer.no_worker:
        result["note"] = NO_WORKER
        if running and memo.get(Memo.AWAIT):  # the server's memo: parked on a decision
            result["awaiting_task_id"] = memo[Memo.AWAIT]
    if running:
        result.update(await stage_facts(client, config, answer.progress, memo))
    elif answer.progress and answer.progress.summary_path:
        result["summary_path"] = answer.progress.summary_path
    return result


def shown_progress(progress: Progress, running: bool) -> dict[str, Any]:
    """PROGRESS as status shows it: what an ended or decided run no longer awaits left out."""
    if not running or progress.decision:  # nothing is awaited any more
        progress.deadline = None
    if not running:
        progress.waiting_on, progress.queue, progress.queue_unpolled = None, None, False
    return progress.model_dump(mode="json")


async def running_facts(config: WorkerConfig,
                        description: WorkflowExecutionDescription) -> dict[str, Any]:
    """What the server (and the task directory) know of a running build, worker or not."""
    facts: dict[str, Any] = {}
    beat = agent_progress(description)
    if beat:
        facts["agent_progress"] = beat
    retry = retry_wait(description)
    if retry:
        facts["retry"] = retry
    if await asyncio.to_thread(TaskDirectory(config.task_dir).sweep_turn_stuck):
        facts["sweep_turn_held"] = str(config.task_dir / ".locks" / SWEEP_LOCK)
    return facts


async def stage_facts(client: Client, config: WorkerConfig, progress: Progress | None,
                      memo: dict[str, Any]) -> dict[str, Any]:
    """The current stage's task file and host queue (from progress, else the run's memo)."""
    facts: dict[str, Any] = {}
    task_id = (progress.task_ids.get(progress.stage) if progress
               else memo.get(Memo.DISPATCH))
    if task_id:
        facts["task_id"] = task_id
        facts["task_file"] = await asyncio.to_thread(task_file, config, task_id)
    if memo.get(Memo.AWAIT):  # parked: a decision may be written into the originating task
        facts["origin_file"] = await asyncio.to_thread(task_file, config, memo[Memo.AWAIT])
    queue = progress.queue if progress else memo.get(Memo.QUEUE)
    if queue:  # the stage is on an agent host's queue: is anyone polling it?
        count, last = await queue_pollers(client, queue)
        facts["host_queue"] = {"name": queue, "live_pollers": count,
                               "last_poll": last.isoformat() if last else None}
    return facts


def task_file(config: WorkerConfig, task_id: str) -> str | None:
    """The path of TASK_ID's file in this host's task directory (None: not here)."""
    try:
        found = TaskDirectory(config.task_dir).find(task_id)
    except (OSError, ValueError, TemporalWorkerError):
        return None
    return str(found) if found else None


def agent_progress(description: WorkflowExecutionDescription) -> dict[str, Any] | None:
    """The waiting stage's last heartbeat: the agent's progress message and when it came
    (the pending activity's heartbeat details, as the Web UI shows them)."""
    for pending in description.raw_description.pending_activities:
        if not pending.HasField("last_heartbeat_time") or not pending.heartbeat_details.payloads:
            continue
        try:
            details = json.loads(pending.heartbeat_details.payloads[0].data)
            message = str(details.get("progress", ""))[:2048]
        except (ValueError, AttributeError):
            continue  # another kind of heartbeat (e.g. our own block wait's)
        at = pending.last_heartbeat_time.ToDatetime(tzinfo=UTC)
        return {"message": message, "at": at.isoformat(),
                "activity": pending.activity_type.name}
    return None


def retry_wait(description: WorkflowExecutionDescription) -> dict[str, Any] | None:
    """An activity waiting for its next attempt (e.g. triage for its file): what it waits
    for, which attempt comes next of how many, and when."""
    for pending in description.raw_description.pending_activities:
        if pending.attempt > 1 and pending.HasField("next_attempt_schedule_time"):
            return {"activity": pending.activity_type.name, **waited_for(pending),
                    "attempt": pending.attempt, "maximum_attempts": pending.maximum_attempts,
                    "next_attempt": pending.next_attempt_schedule_time.ToDatetime(
                        tzinfo=UTC).isoformat()}
    return None


def waited_for(pending: PendingActivityInfo) -> dict[str, str]:
    """What a retrying activity waits for: the file triage's last failure names, else why
    its last attempt failed."""
    failure = pending.last_failure
    if failure.application_failure_info.type == "TriageMissing":  # "...not written yet: PATH"
        return {"waiting_for": failure.message.rpartition(": ")[2]}
    return {"last_failure": failure.message or "failed"}


async def ended_facts(client: Client, description: WorkflowExecutionDescription
                      ) -> dict[str, Any]:
    """Why a closed run ended, and the summary its result names, from its last event (the
    server keeps both: no worker needed)."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace, maximum_page_size=1,
        execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id))
    events = (await client.workflow_service.get_workflow_execution_history_reverse(
        request)).history.events
    if not events:
        return {"reason": None}
    last = events[0]
    facts: dict[str, Any] = {"reason": close_reason(last)}
    if last.HasField("workflow_execution_completed_event_attributes"):
        payloads = last.workflow_execution_completed_event_attributes.result.payloads
        values = await client.data_converter.decode(payloads) if payloads else []
        if values and isinstance(values[0], dict) and values[0].get("summary_path"):
            facts["summary_path"] = str(values[0]["summary_path"])
    return facts


def close_reason(last: HistoryEvent) -> str | None:
    """Why a closed run ended, from its last event (the Web UI shows the same)."""
    if last.HasField("workflow_execution_failed_event_attributes"):
        return last.workflow_execution_failed_event_attributes.failure.message or "failed"
    if last.HasField("workflow_execution_terminated_event_attributes"):
        why = last.workflow_execution_terminated_event_attributes.reason
        return f"terminated: {why}" if why else "terminated"
    if last.HasField("workflow_execution_canceled_event_attributes"):
        return "cancelled by request"
    if last.HasField("workflow_execution_timed_out_event_attributes"):
        return "the run's own time limit passed"
    if last.HasField("workflow_execution_continued_as_new_event_attributes"):
        return "continued as a new run"
    return None


async def refuse_if_ended(handle: WorkflowHandle[Any, Any]) -> None:
    """An ended build takes no decision and no cancellation: say how it ended (exit 7)."""
    status = status_name((await handle.describe()).status)
    if status != "running":
        raise ExitError(f"build {shown(handle.id)} already ended: {status}", Exit.REFUSED)


async def cmd_decide(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    try:
        decision = BlockDecision(by=args.by, reason=args.reason or "")
    except ValidationError as err:
        raise ExitError(validation_message(err), Exit.INVALID) from None
    update = (BuildPipelineWorkflow.approve_blocks if args.command == "approve"
              else BuildPipelineWorkflow.reject_blocks)
    handle = client.get_workflow_handle(args.workflow_id)
    await refuse_if_ended(handle)
    try:
        verdict = await handle.execute_update(update, decision)
    except WorkflowUpdateFailedError as err:
        cause = getattr(err.cause, "message", None) or str(err.cause)
        raise ExitError(f"refused: {cause}", Exit.REFUSED) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # it ended between the two calls
            await refuse_if_ended(handle)
        raise
    return {"workflow_id": args.workflow_id, "decision": verdict, "by": decision.by}


async def cmd_cancel(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    handle = client.get_workflow_handle(args.workflow_id)
    await refuse_if_ended(handle)  # the server accepts a cancel of an ended run silently
    await handle.cancel()
    return {"workflow_id": args.workflow_id, "cancel_requested": True}


def polling_line(host: dict[str, Any]) -> str:
    """Who polls a host queue, and when the server last saw a poll (it counts a stopped
    worker for up to 90 s, so the age tells more than the count)."""
    last = host.get("last_poll")
    age = None
    if last:
        seconds = max(0, int((datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds()))
        age = f"last poll {seconds} s ago"
    if host["live_pollers"]:
        return f"{host['live_pollers']} worker(s) polling, {age}"
    return "no worker polling" + (f" ({age})" if age else "") + ": the stage waits for its host"


def from_now(moment: str) -> str:
    """How far ahead MOMENT (ISO) is, in the unit a person reads: s, min or h."""
    seconds = max(0, int((datetime.fromisoformat(moment) - datetime.now(UTC)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    return f"{round(seconds / 60)} min" if seconds < 3600 else f"{round(seconds / 3600)} h"


def numbered(kind: str, count: int, items: list[str]) -> list[str]:
    """COUNT findings of KIND, each on its own numbered line; past SHOWN (or past what the
    workflow kept) only counted."""
    lines = [f"{kind}: {count}"]
    lines += [f"  {index}. {shown(item)}" for index, item in enumerate(items[:SHOWN], 1)]
    rest = count - min(len(items), SHOWN)
    if items and rest > 0:
        lines.append(f"  … and {rest} more")
    return lines


def findings_lines(progress: dict[str, Any]) -> list[str]:
    """The triage file, a refusal of it (never shown as a block), the blocks and flags."""
    lines = [f"triage file: {shown(progress['triage_path'])}"] if progress.get(
        "triage_path") else []
    refused = progress.get("triage_refused")
    blocks = [item for item in progress.get("findings") or [] if item != refused]
    block_count = progress.get("blocks") or 0
    if refused:
        lines.append(shown(refused))
        block_count = max(block_count - 1, len(blocks))  # the refusal is counted as one
    if block_count:
        lines += numbered("blocks", block_count, blocks)
    if progress.get("flags"):
        lines += numbered("flags", progress["flags"], progress.get("flag_findings") or [])
    return lines


def decision_lines(progress: dict[str, Any]) -> list[str]:
    """The decision, who took it and why; the deadline while it is due."""
    lines = []
    if progress.get("decision"):
        who = f" by {shown(progress['decided_by'])}" if progress.get("decided_by") else ""
        why = f": {shown(progress['decision_reason'])}" if progress.get("decision_reason") else ""
        lines.append(f"decision: {progress['decision']}{who}{why}")
    if progress.get("deadline"):
        lines.append(f"deadline: {progress['deadline']}")
    return lines


def stage_lines(result: dict[str, Any]) -> list[str]:
    """The stage and what it waits on: its task file, a retry, the agent, the host queue."""
    progress = result.get("progress") or {}
    lines = [f"stage: {shown(progress['stage'])}"] if progress else []
    if result.get("task_id"):
        where = result.get("task_file") or f"task {result['task_id']} (no file in this host's "\
                                            f"task directory)"
        lines.append(f"task file: {shown(where)}")
    if result.get("origin_file"):
        lines.append(f"originating task file: {shown(result['origin_file'])}")
    if progress:
        lines.append(f"done: {shown(', '.join(progress['stages_done'])) or '-'}")
    if result["status"] == "running" and progress:
        lines.append(f"waiting on: {shown(progress['waiting_on'] or '-')}")
    elif result.get("awaiting_task_id"):
        lines.append(f"waiting on: operator decision (originating task "
                     f"{shown(result['awaiting_task_id'])})")
    retry = result.get("retry")
    if retry:
        what = (f"waiting for {shown(retry['waiting_for'])}" if retry.get("waiting_for") else
                f"retrying {shown(retry['activity'])} ({shown(retry.get('last_failure'))})")
        lines.append(f"{what} (attempt {retry['attempt']} of "
                     f"{retry['maximum_attempts'] or 'unlimited'}, next in "
                     f"{from_now(retry['next_attempt'])})")
    beat = result.get("agent_progress")
    if beat:
        seconds = int((datetime.now(UTC) - datetime.fromisoformat(beat["at"])).total_seconds())
        lines.append(f"agent progress: {shown(beat['message']) or '-'} ({max(seconds, 0)} s ago)")
    host = result.get("host_queue")
    if host:
        lines.append(f"host queue: {shown(host['name'])} ({polling_line(host)})")
    if progress.get("alert"):
        lines.append(f"attention: {shown(progress['alert'])}")
    return lines


def status_lines(result: dict[str, Any]) -> list[str]:
    """`status` for a person: every agent-written value made inert (see `shown`)."""
    lines = [f"{shown(result['workflow_id'])} ({shown(result['type'])}): {result['status']}"]
    if result.get("reason"):
        lines.append(f"reason: {shown(result['reason'], 2000)}")
    if result.get("sweep_turn_held"):
        lines.append(f"sweep turn lock held 3 s or more: {shown(result['sweep_turn_held'])}; "
                     f"if this repeats, something other than a worker holds it, and file "
                     f"decisions and completions through the task queue wait (see the "
                     f"worker's sweep_turn_held)")
    lines += stage_lines(result)
    progress = result.get("progress") or {}
    lines += findings_lines(progress) + decision_lines(progress)
    if progress.get("outcome"):
        lines.append(f"outcome: {shown(progress['outcome'])}")
    if result.get("summary_path"):
        lines.append(f"summary: {shown(result['summary_path'])}")
    if result.get("note"):
        lines.append(result["note"])
    return [*lines, result["ui"]]


def list_lines(result: dict[str, Any]) -> list[str]:
    """`list` as a table with a header: build, start time, status, stage or outcome."""
    rows = [[shown(row["workflow_id"], 80), shown(row.get("build_name") or "-", 60),
             datetime.fromisoformat(row["started"]).strftime("%Y-%m-%d %H:%M:%S"),
             row["status"], shown(row["stage"] or row.get("outcome") or "-", 60)]
            for row in result["workflows"]]
    if not rows:
        return ["no builds found"] + ([result["note"]] if result.get("note") else [])
    table = [["WORKFLOW ID", "BUILD", "STARTED (UTC)", "STATUS", "STAGE/OUTCOME"], *rows]
    widths = [max(len(row[column]) for row in table) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
             + "  " + row[4] for row in table]
    return lines + ([result["note"]] if result.get("note") else [])


def print_human(command: str, result: dict) -> None:
    if command in ("start", "plan"):
        lines = [f"started {result['workflow_id']}", result["ui"]]
    elif command == "list":
        lines = list_lines(result)
    elif command == "status":
        lines = status_lines(result)
    elif command in ("approve", "reject"):
        lines = [f"{result['workflow_id']}: {result['decision']} by {shown(result['by'])}"]
    else:
        lines = [f"{result['workflow_id']}: cancellation requested"]
    print("\n".join(lines))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="buildctl.py", description=__doc__)
    root.add_argument("--json", action="store_true", help="machine-readable output")
    commands = root.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        """A subcommand that takes --json too (it may come anywhere on the line)."""
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="machine-readable output")
        return sub

    start = command("start", "start a BuildPipelineWorkflow")
    start.add_argument("--build-name", required=True)
    start.add_argument("--plan-path", required=True)
    start.add_argument("--task-id", required=True, help="originating task-queue task id")
    start.add_argument("--agent", required=True, help="target agent")
    start.add_argument("--id", help="workflow id (default build-<name>-<random>)")
    start.add_argument("--without-origin-file", action="store_true",
                       help="start even though the originating task has no task file here "
                            "(e.g. it lives on another host)")
    start.add_argument("--allow-shared-origin", action="store_true",
                       help="start even though a running build already holds the "
                            "originating task (both then decide through it)")
    plan = command("plan", "start a BuildPlanWorkflow from a YAML plan")
    plan.add_argument("file")
    plan.add_argument("--id")
    listing = command("list", "recent builds: name, start, status, stage or outcome")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--running", action="store_true", help="only running builds")
    listing.add_argument("--started-by-0x", action="store_true",
                         help="only running builds a 0.x release started (drain them before "
                              "upgrading to 1.0)")
    listing.add_argument("--waiting", action="store_true",
                         help="only builds waiting for an operator decision")
    status = command("status", "progress of one build")
    status.add_argument("workflow_id")
    approve = command("approve", "approve a build waiting on blocks")
    approve.add_argument("workflow_id")
    approve.add_argument("--by", required=True)
    approve.add_argument("--reason", default="")
    reject = command("reject", "reject a build waiting on blocks")
    reject.add_argument("workflow_id")
    reject.add_argument("--by", required=True)
    reject.add_argument("--reason", required=True)
    cancel = command("cancel", "cancel a build")
    cancel.add_argument("workflow_id")
    return root


COMMANDS = {"start": cmd_start, "plan": cmd_plan, "list": cmd_list, "status": cmd_status,
            "approve": cmd_decide, "reject": cmd_decide, "cancel": cmd_cancel}


def check_text_arguments(args: argparse.Namespace) -> None:
    """Arguments reach Temporal as UTF-8: undecodable bytes from the shell are refused."""
    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ExitError(f"{name.replace('_', '-')} is not valid UTF-8 text",
                                Exit.INVALID) from None


async def run(args: argparse.Namespace) -> dict:
    check_text_arguments(args)
    try:
        config = load_config()
        client = await connect(config.client)
    except TemporalUnreachable:
        raise ExitError(f"cannot reach Temporal at {config.client.address}",
                        Exit.UNREACHABLE) from None
    except TemporalWorkerError as err:
        raise ExitError(str(err), Exit.CONFIG) from None
    try:
        return await COMMANDS[args.command](client, config, args)
    except WorkflowAlreadyStartedError:
        raise ExitError(f"a workflow with id {getattr(args, 'id', None) or '?'} is already "
                        f"running (choose another --id)", Exit.REFUSED) from None
    except RPCError as err:
        code = rpc_exit(err, Exit.REFUSED)
        messages = {
            Exit.NOT_FOUND: f"not found: {getattr(args, 'workflow_id', '')}".strip(),
            Exit.UNREACHABLE: f"cannot reach Temporal at {config.client.address}"}
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            messages[code] = "a workflow with that id is already running"
        raise ExitError(messages.get(code, f"Temporal refused: {err.status.name}: "
                                           f"{err.message[:200]}"), code) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.disable(logging.WARNING)  # the CLI speaks through its own output only
    try:
        result = asyncio.run(run(args))
    except ExitError as err:
        if args.json:
            print(json.dumps({"error": str(err), "exit_code": err.code}))
        else:
            print(f"buildctl: {shown(err, 2000)}", file=sys.stderr)
        return err.code
    except Exception as err:
        print(f"buildctl: unexpected {type(err).__name__}: {shown(err, 200)}", file=sys.stderr)
        return Exit.ERROR
    if args.json:
        print(json.dumps(result))
    else:
        print_human(args.command, result)
    return Exit.OK


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`| head`): what it read is all it wanted
        code = Exit.OK
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the gRPC core can abort while finalizing
