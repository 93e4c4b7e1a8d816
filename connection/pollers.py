"""Who polls a task queue: the server's record of its workers' recent long-polls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

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
