"""Shared dispatch: write the stage's task file with the current token, then complete async."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

from temporalio import activity

from activities.deps import Deps
from contract import encode_token
from taskdir import TaskSpec
from taskdir.waiting import patiently


async def dispatch_and_suspend(deps: Deps, spec: TaskSpec, build: str, stage_activity: str,
                               then: Callable[[], Awaitable[object]] | None = None,
                               why: str | None = None) -> NoReturn:
    """Write (or rewrite) the one live task file for SPEC with this attempt's token, run
    THEN (once the file is there for its agent, or the write failed), then suspend the
    activity until its agent completes it. STAGE_ACTIVITY (v0.5's name of the stage) labels
    the span; WHY is the history note of a rewrite the workflow asked for (a re-offer)."""
    info = activity.info()
    token = encode_token(info.task_token)
    note = why or (None if info.attempt == 1 else f"attempt {info.attempt}: fresh task token")
    try:
        with deps.telemetry.dispatch_span(stage_activity, build):
            path = await patiently(deps.tasks.dispatch, spec, token, note,
                                   on_wait=activity.heartbeat)
    finally:
        if then is not None:  # the last stage's file is settled even if this write failed
            await _never_fails(then, spec.task_id)
    activity.logger.info("task_dispatched", extra={
        "task_id": spec.task_id, "target_agent": spec.target_agent,
        "task_type": spec.task_type, "task_file": str(path), "attempt": info.attempt})
    activity.raise_complete_async()


async def _never_fails(then: Callable[[], Awaitable[object]], task_id: str) -> None:
    """A carried settlement is bookkeeping: it must not fail this stage's dispatch."""
    try:
        await then()
    except Exception as err:  # e.g. a planted duplicate of the last stage's id
        activity.logger.warning("carried_settle_failed", extra={
            "task_id": task_id, "error": f"{type(err).__name__}: {err}"[:200]})
