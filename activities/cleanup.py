"""mark_task_cancelled: a cancelled pipeline withdraws the task file its agent would pick up."""

from __future__ import annotations

import asyncio

import yaml
from temporalio import activity

import taskfiles
from activities.deps import Deps
from exceptions import UnsafePathError
from models import TaskCancellation


class CleanupActivities:
    """Runs after a cancellation request, before the workflow reports itself cancelled."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="mark_task_cancelled")
    async def mark_task_cancelled(self, request: TaskCancellation) -> bool:
        """Set the live task file to `cancelled`; False when there is none (already gone)."""
        return await asyncio.to_thread(self._mark, request)

    def _mark(self, request: TaskCancellation) -> bool:
        path = taskfiles.find_task_file(self.deps.config.task_dir, request.task_id,
                                        include_archive=False)
        if path is None:
            return False
        try:
            taskfiles.set_status(path, "cancelled", request.note,
                                 root=self.deps.config.task_dir)
        except (ValueError, yaml.YAMLError, UnsafePathError) as err:
            activity.logger.warning("task_cancel_mark_failed",
                                    extra={"task_id": request.task_id, "error": str(err)[:200]})
            return False
        activity.logger.info("task_cancelled", extra={"task_id": request.task_id})
        return True
