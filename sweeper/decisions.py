"""Decisions: a credible decision in a parked build's originating task is signalled."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import WorkflowExecution

from models import BlockDecision
from sweeper.notes import Notes
from taskdir import DuplicateTaskId, TaskDirectory
from taskdir.vocabulary import DECISIONS
from workflows.build_pipeline import BuildPipelineWorkflow

log = logging.getLogger("sweeper")


class Decisions:
    """Carries the operator's move in the task file to the parked build (FILE_CHANNEL=open)."""

    def __init__(self, tasks: TaskDirectory, notes: Notes, files_decide: bool) -> None:
        self.tasks, self.notes, self.files_decide = tasks, notes, files_decide

    async def check(self, execution: WorkflowExecution, task_id: str) -> int:
        """Signal the decision TASK_ID's file holds (1), or nothing yet (0)."""
        if not self.files_decide:
            return 0  # FILE_CHANNEL=closed: decisions come through Temporal only
        decision = await asyncio.to_thread(self.tasks.read_decision, task_id)
        verdict = DECISIONS.get(decision.status or "")
        if verdict is None:
            if decision.status is None and await asyncio.to_thread(self._origin_gone, task_id):
                await self.notes.attention(
                    execution, task_id, "originating_task_missing",
                    f"originating task {task_id} has no readable task file: decide with "
                    f"buildctl.py approve/reject or the Web UI")
            return 0
        signal = (BuildPipelineWorkflow.approve if verdict == "approved"
                  else BuildPipelineWorkflow.reject)
        await self.notes.handle(execution).signal(signal, BlockDecision(
            by=decision.by or "task-file",
            reason=decision.reason or f"task {task_id} set to {decision.status}"))
        log.info("block_decision_from_file", extra={"workflow_id": execution.id,
                                                    "decision": decision.status,
                                                    "decided_by": decision.by})
        return 1

    def _origin_gone(self, task_id: str) -> bool:
        """No readable file holds TASK_ID (a duplicate is reported as such, not as gone)."""
        try:
            path = self.tasks.find(task_id)
        except DuplicateTaskId:
            return False
        return path is None or self.tasks.header(path) is None
