"""Finished stage files: a stage moved to `completed`/`failed`/`cancelled` through the
task-queue tooling completes or fails its activity, once the move proves itself."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecution
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from connection.task_token import read_task_token
from contract import PHASE_FAILED, decode_token, token_text
from models import BuildPhaseResult
from sweeper.notes import Notes, run_of
from taskdir import SOURCE_AGENT, load
from taskdir.index import mover
from taskdir.vocabulary import CANCELLED, COMPLETED

log = logging.getLogger("sweeper")
MAX_OUTPUT_CHARS = 100_000  # of the file's result, sent as the stage's output


def actor(document: dict[str, Any]) -> str | None:
    """Who made the file's newest move to its present status."""
    return mover(document, document.get("status"), decision=False)[0]


class FinishedStages:
    """Carries a move made in the tooling to the stage's activity, with the file's token."""

    def __init__(self, client: Client, notes: Notes, stage_agents: frozenset[str]) -> None:
        self.client, self.notes = client, notes
        self.stage_agents = stage_agents  # may finish any stage's file (FILE_APPROVERS)

    async def finish(self, execution: WorkflowExecution, task_id: str, path: Path) -> int:
        """An agent (or operator) finished the stage through the task-queue server."""
        if self.notes.said((run_of(execution), task_id)):
            return 0
        try:
            document = await asyncio.to_thread(load, path)
            token = decode_token(token_text(document) or "")
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("stage_file_unusable", extra={"task_id": task_id, "error": str(err)})
            return 0
        if actor(document) == SOURCE_AGENT:
            return 0  # settled by us (complete_activity.py --task-file, or the worker)
        refusal = await self._refusal(execution, document, token)
        if refusal is not None:
            await self.notes.attention(
                execution, task_id, "stage_file_refused",
                f"task {task_id} set {document.get('status')} in its file, refused: "
                f"{refusal}; the stage waits for a real completion")
            return 0
        return await self._send(execution, task_id, document, token)

    async def _send(self, execution: WorkflowExecution, task_id: str,
                    document: dict[str, Any], token: bytes) -> int:
        """Complete or fail the activity as the file says (0: finished meanwhile)."""
        status = document.get("status")
        result = document.get("result") if isinstance(document.get("result"), dict) else {}
        output = str(result.get("output") or "")[:MAX_OUTPUT_CHARS]
        who = str(result.get("completed_by") or "the task queue")[:200]
        handle = self.client.get_async_activity_handle(task_token=token)
        try:
            if status == COMPLETED:
                await handle.complete(BuildPhaseResult(status="success", output=output))
            else:
                await handle.fail(ApplicationError(
                    output or f"stage {status} through the task queue by {who}",
                    type=PHASE_FAILED, non_retryable=True))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            self.notes.first((run_of(execution), task_id))
            log.info("stage_already_finished", extra={"workflow_id": execution.id,
                                                      "task_id": task_id})
            return 0  # e.g. by complete_activity.py
        self.notes.first((run_of(execution), task_id))
        log.info("stage_finished_through_tooling", extra={
            "workflow_id": execution.id, "task_id": task_id, "status": status})
        return 1

    async def _refusal(self, execution: WorkflowExecution, document: dict[str, Any],
                       token: bytes) -> str | None:
        """Why a file's move cannot complete its stage (None: it can). The token must be
        this run's pending stage activity (a token pasted from another build, or a stale
        copy written back after a re-dispatch, is not), and the move must be the stage
        agent's own (the history entry's actor; forgeable by a writer of the directory)."""
        try:
            facts = read_task_token(token)
        except ValueError as err:
            return str(err)
        if (facts.workflow_id, facts.run_id) != (execution.id, execution.run_id):
            return "its task token belongs to another workflow run"
        description = await self.notes.handle(execution).describe()
        pending = {p.activity_id for p in description.raw_description.pending_activities}
        if facts.activity_id not in pending:
            return "its task token is stale (that attempt of the stage is over)"
        return self._not_the_agent(document)

    def _not_the_agent(self, document: dict[str, Any]) -> str | None:
        """Why the move's actor may not finish this stage (None: it may)."""
        if document.get("status") == CANCELLED and not self.stage_agents:
            return None  # an operator's move in the tooling; FILE_APPROVERS narrows it
        moved_by = actor(document)
        if moved_by not in {str(document.get("target_agent")), *self.stage_agents}:
            return (f"the move was made by {moved_by or 'nobody named'}, not by the stage's "
                    f"agent {document.get('target_agent')}")
        return None
