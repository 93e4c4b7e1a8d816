"""What the sweep has said about each build, so that a problem is said once, not every pass."""

from __future__ import annotations

import contextlib
import logging

from temporalio.client import Client, WorkflowExecution, WorkflowHandle
from temporalio.service import RPCError

from workflows.base import BuildWorkflowBase

log = logging.getLogger("sweeper")


def run_of(execution: WorkflowExecution) -> str:
    """The run a note is about (a key part: a new run of the same id is said again)."""
    return execution.run_id or execution.id


class Notes:
    """The keys already said, and the one way a problem reaches the operator."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._said: set[tuple[str, str]] = set()

    def handle(self, execution: WorkflowExecution) -> WorkflowHandle:
        """The handle of EXECUTION's own run (never a newer run of the same id)."""
        return self.client.get_workflow_handle(execution.id, run_id=execution.run_id)

    def said(self, key: tuple[str, str]) -> bool:
        """Whether KEY was said (or settled) already."""
        return key in self._said

    def first(self, key: tuple[str, str]) -> bool:
        """Mark KEY said; True only the first time."""
        if key in self._said:
            return False
        self._said.add(key)
        return True

    async def attention(self, execution: WorkflowExecution, task_id: str, event: str,
                        note: str) -> None:
        """Report a problem with one build's file once: a log line and the build's
        *Attention* (Web UI current details, `progress.alert`)."""
        if not self.first((run_of(execution), f"{event}:{task_id}")):
            return
        log.warning(event, extra={"workflow_id": execution.id, "task_id": task_id,
                                  "note": note})
        with contextlib.suppress(RPCError):
            await self.handle(execution).signal(BuildWorkflowBase.attention, note)
