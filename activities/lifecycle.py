"""Task-file lifecycle: stage files and the originating task end terminal with their work."""

from __future__ import annotations

from temporalio import activity

from activities.deps import Deps
from exceptions import UnsafePathError
from models import TaskCancellation, TaskSettlement
from taskdir import UNREADABLE
from taskdir.vocabulary import CANCELLED
from taskdir.waiting import patiently

_TROUBLE = (*UNREADABLE, UnsafePathError)  # a file we cannot read, or must not write


def _heartbeat() -> None:
    """Alive while a task lock is held by someone else (a carried settlement runs inside
    dispatch_stage, which heartbeats harmlessly)."""
    activity.heartbeat()


class TaskLifecycle:
    """Moves on task files we own; a finished (terminal) task is never touched again."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="settle_task")
    async def settle_task(self, settlement: TaskSettlement) -> bool:
        """Move a task along (stage done, origin approved/finished); False if not there."""
        return await self.settle(settlement)

    async def settle(self, settlement: TaskSettlement) -> bool:
        """settle_task's work; also done by the next stage's dispatch in lean runs."""
        return await patiently(self._move, settlement.task_id, settlement.status,
                               settlement.note, settlement.output, settlement.by, True,
                               on_wait=_heartbeat)

    @activity.defn(name="mark_task_cancelled")
    async def mark_task_cancelled(self, request: TaskCancellation) -> bool:
        """Set the live task file to `cancelled`; False when there is none (already gone)."""
        return await patiently(self._move, request.task_id, CANCELLED, request.note,
                               None, None, False, on_wait=_heartbeat)

    def _move(self, task_id: str, status: str, note: str, output: str | None,
              by: str | None, include_archive: bool) -> bool:
        try:
            moved = self.deps.tasks.move_on(task_id, status, note, output=output, by=by,
                                            include_archive=include_archive)
        except _TROUBLE as err:
            activity.logger.warning("task_move_failed", extra={
                "task_id": task_id, "status": status, "error": str(err)[:200]})
            return False
        if moved:
            activity.logger.info("task_moved", extra={"task_id": task_id, "status": status})
        return moved
