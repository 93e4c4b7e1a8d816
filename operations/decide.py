"""Approve, reject and cancel: refused once a build has ended."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from config import WorkerConfig
from exceptions import Exit, ExitError
from models import (
    BlockDecision,
)
from operations.common import (
    shown,
    status_name,
    validation_message,
)
from workflows.build_pipeline import BuildPipelineWorkflow


async def refuse_if_ended(handle: WorkflowHandle[Any, Any]) -> None:
    """An ended build takes no decision and no cancellation: say how it ended (exit 7)."""
    status = status_name((await handle.describe()).status)
    if status != "running":
        raise ExitError(f"build {shown(handle.id)} already ended: {status}", Exit.REFUSED)


async def cmd_decide(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    try:
        decision = BlockDecision(by=args.by, reason=args.reason or "")
    except ValidationError as err:
        raise ExitError(validation_message(err), Exit.INVALID) from None
    update = (BuildPipelineWorkflow.approve_blocks if args.command == "approve"
              else BuildPipelineWorkflow.reject_blocks)
    handle = client.get_workflow_handle(args.workflow_id)
    await refuse_if_ended(handle)
    try:
        verdict = await handle.execute_update(update, decision)
    except WorkflowUpdateFailedError as err:
        cause = getattr(err.cause, "message", None) or str(err.cause)
        raise ExitError(f"refused: {cause}", Exit.REFUSED) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # it ended between the two calls
            await refuse_if_ended(handle)
        raise
    return {"workflow_id": args.workflow_id, "decision": verdict, "by": decision.by}


async def cmd_cancel(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    handle = client.get_workflow_handle(args.workflow_id)
    await refuse_if_ended(handle)  # the server accepts a cancel of an ended run silently
    await handle.cancel()
    return {"workflow_id": args.workflow_id, "cancel_requested": True}
