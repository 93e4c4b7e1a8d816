"""The call over gRPC on the SDK's service layer (no temporalio.client, no data converter):
when AGENT_TRANSPORT says so, or once when HTTP is off. Imported only then."""

from __future__ import annotations

import os
import socket
from typing import Any

from agent_cli.notes import warn_vault
from agent_cli.request import Request
from agent_cli.task_files import stage_withdrawn
from connection.http_completion import NOT_FOUND_LINE, STOP_LINE
from connection.settings import ClientSettings
from contract import JSON_ENCODING, PHASE_FAILED, SUCCESS, completion_json, progress_json
from exceptions import Exit, ExitError, TemporalWorkerError


def run(coroutine: Any) -> Any:
    """Run one coroutine of the gRPC path (asyncio is imported only when one is needed)."""
    import asyncio

    return asyncio.run(coroutine)


async def was_offered_again(request: Request, token: bytes) -> bool:
    """Whether TOKEN's stage moved on to a newer offer (asked over gRPC); False when the
    server cannot be asked."""
    from connection.offers import offered_again

    try:
        service, settings, _ = await connected(request)
    except ExitError:
        return False
    return await offered_again(service, settings.namespace, token)


async def connected(request: Request) -> tuple[Any, ClientSettings, Any]:
    """The SDK's service layer connected as the agents' settings say."""
    from temporalio.service import ConnectConfig, ServiceClient

    from connection.settings import agent_settings
    from connection.tls import tls_config

    try:
        settings = agent_settings(os.environ, request.place)
        warn_vault(settings.vault_missing)
        options = settings.connect
        config = ConnectConfig(target_host=settings.address, api_key=options.get("api_key"),
                               tls=tls_config(settings) or False,
                               rpc_metadata=dict(options.get("rpc_metadata") or {}),
                               identity=f"{os.getpid()}@{socket.gethostname()}")
    except TemporalWorkerError as err:
        raise ExitError(str(err), Exit.CONFIG) from None
    try:
        service = await ServiceClient.connect(config)
    except RuntimeError:  # the bridge reports a failed connection this way
        raise ExitError(unreachable(settings), Exit.UNREACHABLE) from None
    return service, settings, config


async def call(request: Request, token: bytes) -> None:
    """One workflow-service RPC on the SDK's service layer (the bridge and one connection, no
    `temporalio.client`, no data converter): the completion, or the heartbeat."""
    from temporalio.service import RPCError

    from connection.offers import OFFERED_AGAIN, offered_again
    from connection.rpc_exits import rpc_exit

    service, settings, config = await connected(request)
    try:
        await send(request, service, settings.namespace, config.identity, token)
    except RPCError as err:
        code = rpc_exit(err, Exit.ERROR)
        if code == Exit.NOT_FOUND and await offered_again(service, settings.namespace, token):
            raise ExitError(OFFERED_AGAIN, Exit.NOT_FOUND) from None
        if code == Exit.NOT_FOUND and request.verb == "heartbeat" and \
                stage_withdrawn(request.task_file):
            raise ExitError(STOP_LINE, Exit.STOP) from None
        messages = {
            Exit.NOT_FOUND: NOT_FOUND_LINE,
            Exit.INVALID: "Temporal rejected the task token as malformed",
            Exit.UNREACHABLE: unreachable(settings)}
        raise ExitError(messages.get(code, f"Temporal refused the completion "
                                           f"({err.status.name})"), code) from None


async def send(request: Request, service: Any, namespace: str, identity: str,
               token: bytes) -> None:
    """The request's RPC. A token that may be an older offer's is checked first: the server
    accepts a completion of a re-dispatched stage's old activity, and nothing would happen."""
    from connection.offers import OFFERED_AGAIN, offered_again

    if request.verb == "heartbeat":
        await beat(service, namespace, identity, token, request.message)
        if stage_withdrawn(request.task_file):  # the run withdrew it; the server may not say
            raise ExitError(STOP_LINE, Exit.STOP)
        return
    if request.maybe_old and await offered_again(service, namespace, token):
        raise ExitError(OFFERED_AGAIN, Exit.NOT_FOUND)
    await respond(service, namespace, identity, token, request.status, request.message)


def unreachable(settings: ClientSettings) -> str:
    """Exit 5's line: the address, and where it came from (the task file, a variable...)."""
    return f"cannot reach Temporal at {settings.address} ({settings.address_from})"


async def beat(service: Any, namespace: str, identity: str, token: bytes, message: str) -> None:
    """RecordActivityTaskHeartbeat with the progress message (shown on the pending activity in
    the Web UI and by `buildctl status`). When the stage was cancelled, acknowledge that (the
    history records the activity as cancelled) and tell the agent to stop, or, when the stage
    was offered again, to use the current task file."""
    from datetime import UTC, datetime

    from temporalio.api.common.v1 import Payload, Payloads
    from temporalio.api.workflowservice.v1 import (
        RecordActivityTaskHeartbeatRequest,
        RespondActivityTaskCanceledRequest,
    )

    from connection.offers import OFFERED_AGAIN, offered_again

    details = progress_json(message, datetime.now(UTC).isoformat())
    payloads = Payloads(payloads=[Payload(metadata={"encoding": JSON_ENCODING}, data=details)])
    reply = await service.workflow_service.record_activity_task_heartbeat(
        RecordActivityTaskHeartbeatRequest(task_token=token, namespace=namespace,
                                           identity=identity, details=payloads), retry=True)
    if reply.cancel_requested:
        again = await offered_again(service, namespace, token)  # not a stop: a new offer
        await service.workflow_service.respond_activity_task_canceled(
            RespondActivityTaskCanceledRequest(task_token=token, namespace=namespace,
                                               identity=identity, details=payloads),
            retry=True)
        if again:
            raise ExitError(OFFERED_AGAIN, Exit.NOT_FOUND)
        raise ExitError(STOP_LINE, Exit.STOP)


async def respond(service: Any, namespace: str, identity: str, token: bytes, status: str,
                  message: str) -> None:
    """RespondActivityTaskCompleted with the stage result as a JSON payload (what the SDK's
    JSON converter writes), or RespondActivityTaskFailed with a non-retryable failure."""
    from temporalio.api.common.v1 import Payload, Payloads
    from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
    from temporalio.api.workflowservice.v1 import (
        RespondActivityTaskCompletedRequest,
        RespondActivityTaskFailedRequest,
    )

    workflow_service = service.workflow_service
    if status == SUCCESS:
        payload = Payload(metadata={"encoding": JSON_ENCODING}, data=completion_json(message))
        await workflow_service.respond_activity_task_completed(
            RespondActivityTaskCompletedRequest(task_token=token, namespace=namespace,
                                                identity=identity,
                                                result=Payloads(payloads=[payload])),
            retry=True)
    else:
        failure = Failure(message=message or "Phase failed", source="PythonSDK",
                          application_failure_info=ApplicationFailureInfo(
                              type=PHASE_FAILED, non_retryable=True))
        await workflow_service.respond_activity_task_failed(
            RespondActivityTaskFailedRequest(task_token=token, namespace=namespace,
                                             identity=identity, failure=failure),
            retry=True)
