"""The one dispatch of the activities: write an agent stage's task file with this attempt's
token, then wait (suspended) until its agent completes the activity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import instructions
from activities.audit_folder import audit_folder, audit_request, retire_previous
from activities.deps import Deps
from activities.lifecycle import TaskLifecycle
from contract import DISPATCH_STAGE, LOCATION_FIELD, encode_token
from exceptions import UnsafePathError
from findings import bounded_findings
from models import BuildPhaseResult, StageTask
from safeio.writing import write_private
from stages import AUDIT, FIXES, stage_named
from taskdir import TaskSpec
from taskdir.waiting import patiently


class StageDispatch:
    """The activity of every agent stage our runs hand out (v0.5's: activities/legacy.py)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=DISPATCH_STAGE)
    async def dispatch_stage(self, task: StageTask) -> BuildPhaseResult:
        """Write the stage's task file (identity decided by the workflow), then suspend."""
        await self.dispatch(task)

    async def dispatch(self, task: StageTask) -> NoReturn:
        try:
            await self._write_and_suspend(task)
        except UnsafePathError as err:  # a planted link or foreign directory: not retried
            raise ApplicationError(str(err), type="UnsafePathError",
                                   non_retryable=True) from None

    async def _write_and_suspend(self, task: StageTask) -> NoReturn:
        stage = stage_named(task.kind)
        fields = dict(task.fields)
        refs, request = list(task.context_refs), None
        if stage is AUDIT:
            request = await self._write_request(task.build, fields)
            refs.append(request)
        if stage is FIXES:
            fields["flags"], cut = bounded_findings(fields["flags"])
            if cut:
                fields["flags_cut"] = cut
        summary, instruction = instructions.texts(stage, fields)
        spec = TaskSpec(
            task_id=task.task_id, target_agent=task.target_agent, task_type=stage.upstream,
            summary=summary,
            payload={**fields, LOCATION_FIELD: self.deps.config.client.location(),
                     "instruction": instruction + "\n" + instructions.progress_line(
                         self.deps.config.timings.agent_heartbeat_timeout)},
            originating_task_id=task.originating_task_id, context_refs=tuple(refs),
            request=request)
        settlement = task.settle
        then = None if settlement is None else (lambda: TaskLifecycle(self.deps).settle(settlement))
        await dispatch_and_suspend(self.deps, spec, task.build, stage.activity, then, task.note)

    async def _write_request(self, build: str, fields: dict[str, Any]) -> str:
        """The audit's request.md, where the security agent reads it; its path (FIELDS gain
        it and the output directory; the implementing agent's report is shown there only)."""
        folder = audit_folder(self.deps.config, build)
        info = activity.info()
        run = f"{info.workflow_id} ({info.workflow_run_id})"
        text = audit_request(build, fields.get("plan_path"), str(folder.path),
                             fields.pop("implement_report", None), run)
        if folder.path.is_dir() and not folder.path.is_symlink():
            moved = await asyncio.to_thread(retire_previous, folder, run)
            if moved:
                activity.logger.info("earlier_audit_set_aside",
                                     extra={"folder": str(folder.path), "files": moved})
        await asyncio.to_thread(write_private, folder.request, text.encode("utf-8"),
                                self.deps.config.audit_dir)
        fields.update(audit_request_path=str(folder.request), output_dir=str(folder.path))
        return str(folder.request)


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
