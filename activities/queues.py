"""Local activities of the main worker: is a host queue polled, is the stage taken from it."""

from __future__ import annotations

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError

from connection.pollers import live_pollers
from models import QueueProbe, QueueState


class QueueActivities:
    """Run by the main worker; the workflow records the answer once per check."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="host_queue_state")
    async def host_queue_state(self, probe: QueueProbe) -> QueueState:
        """Whether a worker polls the queue and whether this run's stage has been taken from
        it: the workflow looks again until it has (a stopped host is counted for 90 s)."""
        info = activity.info()
        try:
            polled = await live_pollers(self.client, probe.task_queue) > 0
            description = await self.client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=self.client.namespace,
                    execution=WorkflowExecution(workflow_id=info.workflow_id,
                                                run_id=info.workflow_run_id or "")))
        except RPCError as err:
            activity.logger.warning("queue_describe_failed", extra={
                "task_queue": probe.task_queue, "error": str(err)[:200]})
            return QueueState(polled=True, started=False)
        started = any(pending.activity_type.name == probe.activity_type and pending.state ==
                      PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                      for pending in description.pending_activities)
        return QueueState(polled=polled, started=started)

