"""What every operator command shares: inert text, status names, bounded calls, progress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from config import WorkerConfig
from connection.pollers import live_pollers
from models import (
    Progress,
    describe_errors,
)
from safeio.inert import one_line
from workflows.base import BuildWorkflowBase

T = TypeVar("T")


# A live worker answers a query in milliseconds; without one the server holds it for seconds.
QUERY_WAIT = timedelta(seconds=1)


NO_WORKER = "no worker answered (is worker.py running?)"


# What a query that nobody answered fails with (timeout, or the server's "no poller seen").
UNANSWERED = {RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED,
              RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.UNAVAILABLE}


LOOKUPS = 16  # server calls one command makes at once (list, the origin check)


def shown(text: object, limit: int = 500) -> str:
    """Agent-written (or any server-held) text as one inert terminal line: no escape sequence,
    carriage return or bidi override an agent wrote can move the cursor or forge a line."""
    return one_line(text, limit)


def status_name(status: WorkflowExecutionStatus | None) -> str:
    """The run's status in our one spelling (the server says CANCELED; we say cancelled)."""
    if status is None:
        return "unknown"
    name = status.name.lower()
    return "cancelled" if name == "canceled" else name


async def bounded(calls: list[Awaitable[T]], width: int = LOOKUPS) -> list[T]:
    """CALLS run at most WIDTH at a time (one server, many builds), in order."""
    gate = asyncio.Semaphore(width)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


def ui_link(config: WorkerConfig, workflow_id: str) -> str:
    base = config.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{config.client.namespace}/workflows/{workflow_id}"


def validation_message(err: ValidationError) -> str:
    return f"invalid {describe_errors(err)}"


@dataclass
class Answer:
    """The run's `progress` query: its answer, or whether no worker answered it."""

    progress: Progress | None = None
    no_worker: bool = False


async def worker_polls(client: Client, config: WorkerConfig) -> bool:
    """Whether the server saw a worker poll the builds' queue lately (none: do not ask)."""
    return await live_pollers(client, config.build_queue) > 0


async def ask_progress(client: Client, workflow_id: str, polled: bool = True) -> Answer:
    """Ask the worker, briefly: without one, the server would hold the question for seconds."""
    if not polled:
        return Answer(no_worker=True)
    try:
        return Answer(await client.get_workflow_handle(workflow_id).query(
            BuildWorkflowBase.progress, rpc_timeout=QUERY_WAIT))
    except RPCError as err:
        return Answer(no_worker=err.status in UNANSWERED)
    except Exception:  # not one of ours (no such query), or an answer we cannot read
        return Answer()
