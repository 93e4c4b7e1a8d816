"""Odd entries: a stage file that is gone, unreadable, dead-lettered or duplicated, and the
bookkeeping of the directory itself. Each is reported, or the stage re-dispatched; never
silently re-created over."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecution
from temporalio.service import RPCError

from activities.deps import Deps
from sweeper.notes import Notes, run_of
from workflows.base import BuildWorkflowBase

log = logging.getLogger("sweeper")
ORPHAN_GRACE = timedelta(seconds=5)
RESIGNAL_AFTER = 30.0  # seconds before the same orphaned stage is signalled again


class OddEntries:
    """What to do about a stage whose file is not there to be read."""

    def __init__(self, deps: Deps, notes: Notes) -> None:
        self.deps, self.tasks, self.notes = deps, deps.tasks, notes
        self._redispatched: dict[tuple[str, str], float] = {}

    def forget_old(self) -> None:
        """Once per pass: orphans asked for long enough ago may be asked for again."""
        cutoff = time.monotonic() - RESIGNAL_AFTER
        self._redispatched = {k: t for k, t in self._redispatched.items() if t > cutoff}

    async def tighten(self) -> None:
        """A token-bearing file someone loosened is 0600 again."""
        for path in await asyncio.to_thread(self.tasks.loose_token_files):
            await asyncio.to_thread(self.tasks.tighten, path)

    async def missing(self, execution: WorkflowExecution, task_id: str) -> int:
        """The stage's live file is not there: unreadable, dead-lettered, or never written."""
        unreadable = await asyncio.to_thread(self.tasks.unreadable_named, task_id)
        if unreadable:  # there, but not readable: never re-dispatched over
            await self.notes.attention(
                execution, task_id, "stage_file_unreadable",
                f"task file {unreadable[0].name} cannot be read (too large, not YAML or not "
                f"a task); the stage waits: fix or remove it, or use complete_activity.py")
            return 0
        if await asyncio.to_thread(self.tasks.find_dead_letter, task_id) is not None:
            return await self._report_dead_letter(execution, task_id)
        return await self._redispatch_orphan(execution, task_id)

    async def _report_dead_letter(self, execution: WorkflowExecution, task_id: str) -> int:
        """The dispatcher gave up routing the stage's file: said once, on the build too."""
        if not self.notes.first((run_of(execution), f"dead:{task_id}")):
            return 0
        note = (f"task {task_id} is in dead-letters/ (the dispatcher gave up routing it); "
                f"requeue it to go on")
        log.warning("stage_dead_lettered", extra={"workflow_id": execution.id,
                                                  "task_id": task_id})
        await self.notes.handle(execution).signal(BuildWorkflowBase.stage_dead_lettered,
                                                  note)
        await self.deps.notifiers.send(f"[ACTION] {execution.id}: stage task dead-lettered",
                                       note)
        return 1

    async def _redispatch_orphan(self, execution: WorkflowExecution, task_id: str) -> int:
        """The stage's file was never written (its worker died first): dispatch it again."""
        handle = self.notes.handle(execution)
        try:
            description = await handle.describe()
        except RPCError:
            return 0
        now = datetime.now(UTC)
        for pending in description.raw_description.pending_activities:
            started = pending.last_started_time.ToDatetime(tzinfo=UTC)
            if (pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                    and now - started > ORPHAN_GRACE):
                key = (run_of(execution), task_id)
                if time.monotonic() - self._redispatched.get(key, -1e9) < RESIGNAL_AFTER:
                    return 0  # asked already; the workflow may be waiting for a worker
                self._redispatched[key] = time.monotonic()
                await handle.signal(BuildWorkflowBase.redispatch)
                log.warning("orphaned_dispatch_recovered",
                            extra={"workflow_id": execution.id, "task_id": task_id,
                                   "activity": pending.activity_type.name})
                return 1
        return 0
