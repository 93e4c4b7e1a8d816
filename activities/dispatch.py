"""Shared dispatch: write the stage's task file with the current token, then complete async."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any, NoReturn

from temporalio import activity
from temporalio.exceptions import ApplicationError

import taskfiles
from activities.deps import Deps
from exceptions import UnsafePathError
from ids import stage_task_id

log = logging.getLogger("activities.dispatch")


def current_task_id(stage_key: str) -> str:
    """The deterministic task id of STAGE_KEY in the current workflow run."""
    return stage_task_id(activity.info().workflow_run_id, stage_key)


async def dispatch_and_suspend(deps: Deps, *, stage_key: str, target_agent: str,
                               task_type: str, summary: str, build: str,
                               payload: dict[str, Any]) -> NoReturn:
    """Write (or rewrite) the one live task file for this stage and suspend the activity."""
    info = activity.info()
    token = base64.b64encode(info.task_token).decode("ascii")
    spec = taskfiles.TaskSpec(task_id=current_task_id(stage_key), target_agent=target_agent,
                              task_type=task_type, summary=summary, payload=payload)
    note = None if info.attempt == 1 else f"attempt {info.attempt}: fresh task token"
    try:
        with deps.telemetry.dispatch_span(info.activity_type, build):
            path = await asyncio.to_thread(taskfiles.dispatch, deps.config.task_dir, spec,
                                           token, note)
    except UnsafePathError as err:
        raise ApplicationError(str(err), type="UnsafePathError", non_retryable=True) from None
    activity.logger.info("task_dispatched", extra={
        "task_id": spec.task_id, "target_agent": target_agent, "task_type": task_type,
        "task_file": str(path), "attempt": info.attempt})
    activity.raise_complete_async()
