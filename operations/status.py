"""`buildctl status`: what the server, the worker and the task directory know of one build."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
)

from config import WorkerConfig
from connection.pollers import queue_pollers
from contract import Memo
from exceptions import TemporalWorkerError
from models import (
    Progress,
)
from operations.common import (
    NO_WORKER,
    ask_progress,
    status_name,
    ui_link,
    worker_polls,
)
from taskdir import TaskDirectory
from taskdir.locks import SWEEP_LOCK


async def cmd_status(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    description = await client.get_workflow_handle(args.workflow_id).describe()
    result: dict[str, Any] = {"workflow_id": args.workflow_id,
                              "type": description.workflow_type,
                              "status": status_name(description.status),
                              "ui": ui_link(config, args.workflow_id)}
    running = result["status"] == "running"
    polled = await worker_polls(client, config)
    answer, facts = await asyncio.gather(
        ask_progress(client, args.workflow_id, polled),
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
