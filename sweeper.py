"""Worker-side periodic sweep: file approvals for parked pipelines, orphaned dispatches."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError

import taskfiles
from models import BlockDecision
from workflows.common import AWAIT_MEMO, DISPATCH_MEMO, FILE_DECISIONS

log = logging.getLogger("sweeper")
ORPHAN_GRACE = timedelta(seconds=5)
RESIGNAL_AFTER = 30.0  # seconds before the same orphaned stage is signalled again


class Sweeper:
    """One pass per interval over running workflows on our task queue."""

    def __init__(self, client: Client, task_queue: str, task_dir: Path, interval: float,
                 approvers: frozenset[str] = frozenset()) -> None:
        self.client = client
        self.task_dir = task_dir
        self.approvers = approvers
        self.interval = interval
        self._redispatched: dict[tuple[str, str], float] = {}
        self.query = (f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running' AND "
                      f"WorkflowType IN ('BuildPipelineWorkflow', 'BuildPlanWorkflow')")

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as err:  # a failed sweep is retried next interval
                log.warning("sweep_failed", extra={"error": f"{type(err).__name__}: {err}"[:300]})
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Return how many workflows were signalled."""
        signalled = 0
        cutoff = time.monotonic() - RESIGNAL_AFTER
        self._redispatched = {k: t for k, t in self._redispatched.items() if t > cutoff}
        async for execution in self.client.list_workflows(self.query, page_size=1000):
            memo = await execution.memo()
            if memo.get(AWAIT_MEMO):
                signalled += await self._check_block(execution, str(memo[AWAIT_MEMO]))
            elif memo.get(DISPATCH_MEMO):
                signalled += await self._check_dispatch(execution, str(memo[DISPATCH_MEMO]))
        return signalled

    async def _check_block(self, execution: WorkflowExecution, task_id: str) -> int:
        decision = await asyncio.to_thread(taskfiles.read_decision, self.task_dir, task_id,
                                           self.approvers)
        status = decision.status
        signal = FILE_DECISIONS.get(status or "")
        if signal is None:
            return 0
        handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        await handle.signal(signal, BlockDecision(by=decision.by or "task-file",
                                                  reason=f"task {task_id} set to {status}"))
        log.info("block_decision_from_file", extra={"workflow_id": execution.id,
                                                    "decision": status})
        return 1

    async def _check_dispatch(self, execution: WorkflowExecution, task_id: str) -> int:
        path = await asyncio.to_thread(taskfiles.find_task_file, self.task_dir, task_id)
        if path is not None:
            return 0
        handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        try:
            description = await handle.describe()
        except RPCError:
            return 0
        now = datetime.now(UTC)
        for pending in description.raw_description.pending_activities:
            started = pending.last_started_time.ToDatetime(tzinfo=UTC)
            if (pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                    and now - started > ORPHAN_GRACE):
                key = (execution.run_id or execution.id, task_id)
                if time.monotonic() - self._redispatched.get(key, -1e9) < RESIGNAL_AFTER:
                    return 0  # asked already; the workflow may be waiting for a worker
                self._redispatched[key] = time.monotonic()
                await handle.signal("redispatch")
                log.warning("orphaned_dispatch_recovered",
                            extra={"workflow_id": execution.id, "task_id": task_id,
                                   "activity": pending.activity_type.name})
                return 1
        return 0
