"""Whether a task token is still the one its stage waits on: a stage offered again (the sweeper
re-dispatched it, or a new attempt) has a new token, and the old one must not look like it
worked (the server accepts a completion of the old, cancel-requested activity)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connection.task_token import TokenFacts, read_task_token

OFFERED_AGAIN = "this stage was offered again; use the current task file"


async def offered_again(service: Any, namespace: str, token: bytes) -> bool:
    """Ask the server (DescribeWorkflowExecution) whether TOKEN's stage moved on to a newer
    offer. False when it cannot tell (no such run, no permission): the call's own answer then
    stands."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
    from temporalio.service import RPCError

    try:
        facts = read_task_token(token)
        reply = await service.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=namespace, execution=WorkflowExecution(
                workflow_id=facts.workflow_id, run_id=facts.run_id)), retry=True)
    except (ValueError, RPCError):
        return False
    return superseded(facts, reply.pending_activities)


def superseded(facts: TokenFacts, pending: Sequence[Any]) -> bool:
    """Whether the activity FACTS names is pending but no longer the one its stage waits on:
    another attempt of it runs, or it was cancelled for a new activity of the same kind (a
    re-dispatch) that still runs."""
    from temporalio.api.enums.v1 import PendingActivityState

    cancelling = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    mine = next((item for item in pending if item.activity_id == facts.activity_id), None)
    if mine is None:
        return False
    if facts.attempt and mine.attempt != facts.attempt:
        return True
    return mine.state == cancelling and any(
        item.activity_id != mine.activity_id and item.state != cancelling
        and item.activity_type.name == mine.activity_type.name for item in pending)
