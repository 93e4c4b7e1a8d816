"""queue_polled: whether a host's task queue has a live worker (a local activity of the main)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from models import QueueProbe, QueueState

# A live worker long-polls about once a minute; the server remembers pollers for minutes.
POLLER_FRESH = timedelta(seconds=90)


async def queue_pollers(client: Client, queue: str) -> tuple[int, datetime | None]:
    """How many workers polled QUEUE for activities within POLLER_FRESH, and when the last
    poll the server remembers began (None: none remembered)."""
    response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
    seen = [poller.last_access_time.ToDatetime(tzinfo=UTC) for poller in response.pollers]
    cutoff = datetime.now(UTC) - POLLER_FRESH
    return sum(1 for moment in seen if moment >= cutoff), max(seen, default=None)


async def live_pollers(client: Client, queue: str) -> int:
    """How many workers polled QUEUE for activities within POLLER_FRESH."""
    return (await queue_pollers(client, queue))[0]


class QueueActivities:
    """Run by the main worker; the workflow records the answer once per check."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="queue_polled")
    async def queue_polled(self, probe: QueueProbe) -> bool:
        """True when a worker polls the queue (or the server cannot tell us: no false alarm)."""
        try:
            return await live_pollers(self.client, probe.task_queue) > 0
        except RPCError as err:
            activity.logger.warning("queue_describe_failed", extra={
                "task_queue": probe.task_queue, "error": str(err)[:200]})
            return True

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

