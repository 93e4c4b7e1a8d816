"""queue_polled: whether a host's task queue has a live worker (a local activity of the main)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from models import QueueProbe

# A live worker long-polls about once a minute; the server remembers pollers for minutes.
POLLER_FRESH = timedelta(seconds=90)


async def live_pollers(client: Client, queue: str) -> int:
    """How many workers polled QUEUE for activities within POLLER_FRESH."""
    response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
    cutoff = datetime.now(UTC) - POLLER_FRESH
    return sum(1 for poller in response.pollers
               if poller.last_access_time.ToDatetime(tzinfo=UTC) >= cutoff)


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
