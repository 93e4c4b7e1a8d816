"""`buildctl list`: recent builds with their stage or outcome, and the runs 0.x started."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from temporalio.client import (
    Client,
)
from temporalio.client import WorkflowExecution as ListedRun

from config import WorkerConfig
from connection.search_attributes import BUILD_NAME
from contract import BUILDS_QUERY, EARLIER_MARKERS, RUNNING_BUILDS_QUERY, Memo
from operations.common import (
    NO_WORKER,
    ask_progress,
    bounded,
    status_name,
    worker_polls,
)

EARLIER_RUN = "started by 0.x: finish it on a 0.x worker (docs/upgrading.md)"


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
    answer = await ask_progress(client, execution.id, polled)
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
