"""Whether Temporal (and its database) answers now: an outage is said once, and its end once."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from temporalio.api.workflowservice.v1 import CountWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger("sweeper")
# RPC statuses that mean Temporal (or its database) cannot be reached right now.
OUTAGE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                    RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.INTERNAL,
                    RPCStatusCode.UNKNOWN, RPCStatusCode.CANCELLED})
PROBE_TIMEOUT = timedelta(seconds=10)  # a server that does not answer is an outage


def outage(err: RPCError) -> bool:
    """ERR says Temporal cannot serve us right now. A frontend whose database is down says
    our namespace (found at start) is not found."""
    return err.status in OUTAGE or (err.status == RPCStatusCode.NOT_FOUND
                                    and "namespace" in err.message.lower())


class Reach:
    """One probe per pass, so that a pass waits for an outage to end instead of failing."""

    def __init__(self, client: Client, query: str, address: str) -> None:
        self.client, self.query, self.address = client, query, address
        self._since: float | None = None  # when Temporal stopped answering

    async def reachable(self) -> bool:
        """One count of our builds, not retried: whether Temporal answers now."""
        try:
            await self.client.workflow_service.count_workflow_executions(
                CountWorkflowExecutionsRequest(namespace=self.client.namespace,
                                               query=self.query),
                retry=False, timeout=PROBE_TIMEOUT)
        except RPCError as err:
            if not outage(err):
                raise
            self._lost(err)
            return False
        self._back()
        return True

    def _lost(self, err: RPCError) -> None:
        """Said once per outage (the worker keeps running; the SDK reconnects by itself)."""
        if self._since is None:
            self._since = time.monotonic()
            log.warning("temporal_unreachable", extra={
                "address": self.address, "status": err.status.name,
                "effect": "sweeps wait; the worker reconnects by itself"})

    def _back(self) -> None:
        """The outage is over: said once, with how long it lasted."""
        if self._since is not None:
            log.info("temporal_reachable", extra={
                "address": self.address,
                "outage_seconds": round(time.monotonic() - self._since, 1)})
            self._since = None
