#!/usr/bin/env python3
"""Operator CLI: start, list, inspect, approve, reject and cancel builds without writing JSON."""

from __future__ import annotations

import bootstrap  # first: third-party imports below need the project's interpreter

bootstrap.ensure_dependencies("buildctl", __file__)
bootstrap.lighten_sdk_import()

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config import WorkerConfig, load_config
from connection.client import connect
from connection.pollers import queue_pollers
from connection.rpc_exits import rpc_exit
from contract import BUILDS_QUERY
from exceptions import Exit, TemporalUnreachable, TemporalWorkerError
from models import (
    BlockDecision,
    BuildPipelineInput,
    BuildPlanInput,
    Progress,
    describe_errors,
    plan_path_problem,
)
from safeio import untrusted_yaml
from taskdir import TaskDirectory
from taskdir.locks import SWEEP_LOCK
from workflows.build_pipeline import BuildPipelineWorkflow
from workflows.build_plan import BuildPlanWorkflow
from workflows.dispatching import DispatchingWorkflow

MAX_PLAN_BYTES = 1024 * 1024


class Failure(Exception):
    """One line for the operator and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


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
        raise Failure(f"originating task {task_id} has no task file in {config.task_dir}; "
                      f"write it first (README: The originating task) or pass "
                      f"--without-origin-file", Exit.REFUSED)


async def cmd_start(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    try:
        params = BuildPipelineInput(build_name=args.build_name, plan_path=args.plan_path,
                                    task_id=args.task_id, target_agent=args.agent)
    except ValidationError as err:
        raise Failure(validation_message(err), Exit.INVALID) from None
    problem = plan_path_problem(params.plan_path)
    if problem:
        raise Failure(f"invalid {problem}", Exit.INVALID)
    if not args.without_origin_file:
        await asyncio.to_thread(check_origin, config, params.task_id)
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
        raise Failure(f"cannot read {args.file}: {err.strerror}", Exit.INVALID) from None
    except untrusted_yaml.InputRefused as err:
        raise Failure(f"{args.file}: {err}", Exit.INVALID) from None
    except yaml.YAMLError:
        raise Failure(f"{args.file} is not valid UTF-8 YAML", Exit.INVALID) from None
    except ValidationError as err:
        raise Failure(validation_message(err), Exit.INVALID) from None
    workflow_id = args.id or f"plan-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        BuildPlanWorkflow.run, plan.model_dump(), id=workflow_id, task_queue=config.task_queue,
        static_summary=f"Plan {plan.plan_name}: {len(plan.phases)} phase(s)")
    return {"workflow_id": workflow_id, "ui": ui_link(config, workflow_id)}


async def _progress(client: Client, workflow_id: str) -> Progress | None:
    try:
        return await client.get_workflow_handle(workflow_id).query(
            DispatchingWorkflow.progress, rpc_timeout=timedelta(seconds=5))
    except Exception:
        return None


async def cmd_list(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    query = BUILDS_QUERY.format(task_queue=config.build_queue)
    rows = []
    async for execution in client.list_workflows(query, limit=args.limit):
        status = execution.status.name.lower() if execution.status else "unknown"
        stage = None
        if status == "running":
            progress = await _progress(client, execution.id)
            stage = progress.stage if progress else None
        rows.append({"workflow_id": execution.id, "type": execution.workflow_type,
                     "status": status, "stage": stage,
                     "started": execution.start_time.isoformat()})
    return {"workflows": rows}


async def cmd_status(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    handle = client.get_workflow_handle(args.workflow_id)
    description = await handle.describe()
    result: dict[str, Any] = {"workflow_id": args.workflow_id,
                              "type": description.workflow_type,
                              "status": description.status.name.lower()
                              if description.status else "unknown",
                              "ui": ui_link(config, args.workflow_id)}
    running = result["status"] == "running"
    if running:
        beat = agent_progress(description)
        if beat:
            result["agent_progress"] = beat
    if not running:
        result["reason"] = await close_reason(client, description)
    elif await asyncio.to_thread(TaskDirectory(config.task_dir).sweep_turn_stuck):
        result["sweep_turn_held"] = str(config.task_dir / ".locks" / SWEEP_LOCK)
    progress = await _progress(client, args.workflow_id)
    if progress is not None:
        if not running or progress.decision:  # nothing is awaited any more
            progress.deadline = None
        if not running:
            progress.waiting_on, progress.queue, progress.queue_unpolled = None, None, False
        result["progress"] = progress.model_dump(mode="json")
        if progress.queue:  # the stage is on an agent host's queue: is anyone polling it?
            count, last = await queue_pollers(client, progress.queue)
            result["host_queue"] = {"name": progress.queue, "live_pollers": count,
                                    "last_poll": last.isoformat() if last else None}
    return result


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


async def close_reason(client: Client, description: WorkflowExecutionDescription) -> str | None:
    """Why a closed run ended, from its last event (the Web UI shows the same)."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace, maximum_page_size=1,
        execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id))
    events = (await client.workflow_service.get_workflow_execution_history_reverse(
        request)).history.events
    if not events:
        return None
    last = events[0]
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


async def cmd_decide(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    try:
        decision = BlockDecision(by=args.by, reason=args.reason or "")
    except ValidationError as err:
        raise Failure(validation_message(err), Exit.INVALID) from None
    update = (BuildPipelineWorkflow.approve_blocks if args.command == "approve"
              else BuildPipelineWorkflow.reject_blocks)
    handle = client.get_workflow_handle(args.workflow_id)
    try:
        verdict = await handle.execute_update(update, decision)
    except WorkflowUpdateFailedError as err:
        cause = getattr(err.cause, "message", None) or str(err.cause)
        raise Failure(f"refused: {cause}", Exit.REFUSED) from None
    return {"workflow_id": args.workflow_id, "decision": verdict, "by": decision.by}


async def cmd_cancel(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    await client.get_workflow_handle(args.workflow_id).cancel()
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


def print_human(command: str, result: dict) -> None:
    if command in ("start", "plan"):
        print(f"started {result['workflow_id']}\n{result['ui']}")
    elif command == "list":
        for row in result["workflows"]:
            print(f"{row['workflow_id']:<40} {row['type']:<22} {row['status']:<11} "
                  f"{row['stage'] or '-'}")
        if not result["workflows"]:
            print("no builds found")
    elif command == "status":
        print(f"{result['workflow_id']} ({result['type']}): {result['status']}")
        if result.get("reason"):
            print(f"reason: {result['reason']}")
        if result.get("sweep_turn_held"):
            print(f"sweep turn lock held 3 s or more: {result['sweep_turn_held']}; if this "
                  f"repeats, something other than a worker holds it, and file decisions and "
                  f"completions through the task queue wait (see the worker's sweep_turn_held)")
        progress = result.get("progress")
        if progress:
            print(f"stage: {progress['stage']}")
            print(f"done: {', '.join(progress['stages_done']) or '-'}")
            if result["status"] == "running":
                print(f"waiting on: {progress['waiting_on'] or '-'}")
            beat = result.get("agent_progress")
            if beat:
                seconds = int((datetime.now(UTC) - datetime.fromisoformat(beat["at"]))
                              .total_seconds())
                print(f"agent progress: {beat['message'] or '-'} ({max(seconds, 0)} s ago)")
            host = result.get("host_queue")
            if host:
                print(f"host queue: {host['name']} ({polling_line(host)})")
            if progress.get("decision"):
                print(f"decision: {progress['decision']}")
            if progress.get("deadline"):
                print(f"deadline: {progress['deadline']}")
        print(result["ui"])
    elif command in ("approve", "reject"):
        print(f"{result['workflow_id']}: {result['decision']} by {result['by']}")
    else:
        print(f"{result['workflow_id']}: cancellation requested")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="buildctl.py", description=__doc__)
    root.add_argument("--json", action="store_true", help="machine-readable output")
    commands = root.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a BuildPipelineWorkflow")
    start.add_argument("--build-name", required=True)
    start.add_argument("--plan-path", required=True)
    start.add_argument("--task-id", required=True, help="originating task-queue task id")
    start.add_argument("--agent", required=True, help="target agent")
    start.add_argument("--id", help="workflow id (default build-<name>-<random>)")
    start.add_argument("--without-origin-file", action="store_true",
                       help="start even though the originating task has no task file here "
                            "(e.g. it lives on another host)")
    plan = commands.add_parser("plan", help="start a BuildPlanWorkflow from a YAML plan")
    plan.add_argument("file")
    plan.add_argument("--id")
    listing = commands.add_parser("list", help="recent builds with status and stage")
    listing.add_argument("--limit", type=int, default=20)
    status = commands.add_parser("status", help="progress of one build")
    status.add_argument("workflow_id")
    approve = commands.add_parser("approve", help="approve a build waiting on blocks")
    approve.add_argument("workflow_id")
    approve.add_argument("--by", required=True)
    approve.add_argument("--reason", default="")
    reject = commands.add_parser("reject", help="reject a build waiting on blocks")
    reject.add_argument("workflow_id")
    reject.add_argument("--by", required=True)
    reject.add_argument("--reason", required=True)
    cancel = commands.add_parser("cancel", help="cancel a build")
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
                raise Failure(f"{name.replace('_', '-')} is not valid UTF-8 text",
                              Exit.INVALID) from None


async def run(args: argparse.Namespace) -> dict:
    check_text_arguments(args)
    try:
        config = load_config()
        client = await connect(config.client)
    except TemporalUnreachable:
        raise Failure(f"cannot reach Temporal at {config.client.address}",
                      Exit.UNREACHABLE) from None
    except TemporalWorkerError as err:
        raise Failure(str(err), Exit.CONFIG) from None
    try:
        return await COMMANDS[args.command](client, config, args)
    except WorkflowAlreadyStartedError:
        raise Failure(f"a workflow with id {getattr(args, 'id', None) or '?'} is already "
                      f"running (choose another --id)", Exit.REFUSED) from None
    except RPCError as err:
        code = rpc_exit(err, Exit.REFUSED)
        messages = {
            Exit.NOT_FOUND: f"not found: {getattr(args, 'workflow_id', '')}".strip(),
            Exit.UNREACHABLE: f"cannot reach Temporal at {config.client.address}"}
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            messages[code] = "a workflow with that id is already running"
        raise Failure(messages.get(code, f"Temporal refused: {err.status.name}: "
                                         f"{err.message[:200]}"), code) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.disable(logging.WARNING)  # the CLI speaks through its own output only
    try:
        result = asyncio.run(run(args))
    except Failure as err:
        if args.json:
            print(json.dumps({"error": str(err), "exit_code": err.code}))
        else:
            print(f"buildctl: {err}", file=sys.stderr)
        return err.code
    except Exception as err:
        print(f"buildctl: unexpected {type(err).__name__}: {str(err)[:200]}", file=sys.stderr)
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
