#!/usr/bin/env python3
"""The agents' CLI: resume a suspended stage with success or failure (never prints the token)."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path
from typing import Any, NamedTuple

from connection.http_completion import NOT_FOUND_LINE, STOP_LINE
from connection.settings import ClientSettings, StageLocation, stage_location
from contract import (
    DEFAULT_TASK_DIR,
    FAILED,
    JSON_ENCODING,
    LOCATION_FIELD,
    PHASE_FAILED,
    SUCCESS,
    TASK_DIR_VARIABLE,
    TOKEN_FIELD,
    completion_json,
    decode_token,
    progress_json,
    token_text,
)
from exceptions import Exit, ExitError, TemporalWorkerError

USAGE = (
    "usage: complete_activity.py TOKEN|- success|failed [message]\n"
    "       complete_activity.py --task-file PATH success|failed [message]\n"
    "       complete_activity.py heartbeat --task-file PATH|TOKEN|- [progress message]"
)
MAX_TOKEN_CHARS = 16384
MAX_MESSAGE_BYTES = 256 * 1024
MAX_PROGRESS_BYTES = 2048  # a heartbeat's progress message
STATUSES = (SUCCESS, FAILED)


def checked_token(text: str) -> bytes:
    """The contract's token from TEXT; the token itself never appears in a message."""
    if not text.strip():
        raise ExitError("task token is empty", Exit.INVALID)
    if len(text.strip()) > MAX_TOKEN_CHARS:
        raise ExitError(f"task token is longer than {MAX_TOKEN_CHARS} characters", Exit.INVALID)
    try:
        return decode_token(text)
    except ValueError as err:
        raise ExitError(str(err), Exit.INVALID) from None


def read_task_file(path: str) -> TokenSource:
    """payload.task_token of a task YAML file, read as the worker reads what agents could
    have written (bounded, no link; what the lean reader does not fully understand goes to
    the safe full loader), with where its stage lives (payload.temporal) and whether it was
    offered more than once."""
    from safeio.regular import InputRefused
    from taskdir.reading import load, offers

    try:
        document = load(Path(path), lean=True)
    except OSError as err:
        reason = "is a symlink" if err.errno == errno.ELOOP else err.strerror
        raise ExitError(f"cannot read task file {path}: {reason}", Exit.USAGE) from None
    except InputRefused as err:
        raise ExitError(f"cannot read task file {path}: {err}", Exit.USAGE) from None
    except Exception as err:  # ValueError, or the full loader's yaml.YAMLError
        if not isinstance(err, ValueError) and not _yaml_error(err):
            raise
        detail = str(err) if isinstance(err, ValueError) else "not valid YAML"
        raise ExitError(f"task file {path}: {detail}", Exit.INVALID) from None
    token = token_text(document)
    if token is None:
        raise ExitError(f"task file {path} has no payload.{TOKEN_FIELD}", Exit.INVALID)
    maybe_old = offers(document) > 1 or Path(path).resolve().parent != task_dir().resolve()
    return TokenSource(token, path, location_in(document, path), maybe_old)


def _yaml_error(err: Exception) -> bool:
    """Whether ERR is PyYAML's (loaded only when the full loader was needed)."""
    yaml = sys.modules.get("yaml")
    return yaml is not None and isinstance(err, yaml.YAMLError)


def location_in(document: dict[str, Any], path: object) -> StageLocation | None:
    """Where the stage of the task file DOCUMENT (at PATH) lives, or None if it does not say."""
    payload = document.get("payload")
    try:
        return stage_location(payload.get(LOCATION_FIELD) if isinstance(payload, dict) else None)
    except ValueError as err:
        raise ExitError(f"task file {path}: {err}", Exit.INVALID) from None


def check_message(message: str, limit: int = MAX_MESSAGE_BYTES, what: str = "output") -> str:
    """What an agent reports must survive the trip: valid UTF-8 text, bounded size."""
    try:
        size = len(message.encode("utf-8"))
    except UnicodeEncodeError:
        raise ExitError(f"the {what} is not valid UTF-8 text (undecodable bytes in the "
                        f"argument); nothing was sent", Exit.REFUSED) from None
    if size > limit:
        raise ExitError(f"the {what} is larger than {limit} bytes; nothing was "
                        f"sent (write it to a file and pass the path)", Exit.REFUSED)
    return message


class Request(NamedTuple):
    """One call of the CLI: finish a stage (success/failed) or report progress."""

    verb: str  # "complete" or "heartbeat"
    token_text: str
    status: str  # success, failed; "progress" for a heartbeat
    message: str
    task_file: str | None
    place: StageLocation | None = None  # where the task file says its stage lives
    maybe_old: bool = False  # the token may be an older offer's: ask the server first


def parse_args(argv: list[str]) -> Request:
    """The Request ARGV asks for, or ExitError(usage)."""
    if argv[:1] in (["-h"], ["--help"]):
        raise ExitError(USAGE, Exit.OK)
    if argv[:1] == ["heartbeat"]:
        source, rest = token_source(argv[1:])
        message = check_message(" ".join(rest), MAX_PROGRESS_BYTES, "progress message")
        return Request("heartbeat", source.token, "progress", message, source.path,
                       source.place, source.maybe_old)
    source, rest = token_source(argv)
    if not rest:
        raise ExitError(USAGE, Exit.USAGE)
    status = rest[0]
    if status not in STATUSES:
        shown = status[:40].encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise ExitError(f"status must be 'success' or 'failed', got {shown!r}", Exit.USAGE)
    return Request("complete", source.token, status, check_message(" ".join(rest[1:])),
                   source.path, source.place, source.maybe_old)


class TokenSource(NamedTuple):
    """Where the token came from: its text, and the task file (and what it says) if any."""

    token: str
    path: str | None = None
    place: StageLocation | None = None
    maybe_old: bool = False  # its file was offered more than once, or is a copy elsewhere


def token_source(argv: list[str]) -> tuple[TokenSource, list[str]]:
    """The token's source and the arguments after it, from `--task-file PATH`,
    `--task-file=PATH`, `-` (stdin) or the token itself."""
    if argv[:1] == ["--task-file"] and len(argv) >= 2:
        return read_task_file(argv[1]), argv[2:]
    if argv and argv[0].startswith("--task-file="):
        return read_task_file(argv[0].split("=", 1)[1]), argv[1:]
    if not argv or argv[0].startswith("--"):
        raise ExitError(USAGE, Exit.USAGE)
    if argv[0] == "-":
        return TokenSource(sys.stdin.read(MAX_TOKEN_CHARS + 2)), argv[1:]
    return TokenSource(argv[0]), argv[1:]


def deliver(request: Request, token: bytes) -> None:
    """The call over Temporal's HTTP API (no SDK import), or over gRPC when AGENT_TRANSPORT
    says so, or once when HTTP is off (said on stderr; one line when gRPC is off too)."""
    from connection import http_completion as http

    if request.verb == "complete" and stage_withdrawn(request.task_file):
        raise ExitError(CANCELLED_LINE, Exit.NOT_FOUND)  # the server may still accept it
    try:
        choice = http.transport(os.environ)
        off = None if choice == "grpc" else over_http(request, token)
    except http.HandOffError as err:
        raise ExitError(str(err), err.code) from None
    except TemporalWorkerError as err:  # settings, credentials, TLS
        raise ExitError(str(err), Exit.CONFIG) from None
    if off is not None and choice == "http":
        raise ExitError(f"{off} ({http.TRANSPORT_VAR}=http)", Exit.UNREACHABLE)
    if choice == "grpc" or off is not None:
        try:
            run(call(request, token))
        except ExitError as err:
            if off is not None and err.code == Exit.UNREACHABLE:
                raise ExitError(f"{err}; and {off}", err.code) from None
            say_fallback(off)
            raise
        say_fallback(off)


def over_http(request: Request, token: bytes) -> str | None:
    """The call over HTTP; None once done, else why HTTP is off (nothing was sent)."""
    from connection import http_completion as http

    where = http.target(os.environ, request.place)
    warn_vault(where.vault_missing)
    try:
        http.hand_off(where, http.Call(
            request.verb, request.status, request.message, request.maybe_old,
            lambda: run(was_offered_again(request, token)),
            lambda: stage_withdrawn(request.task_file)), token)
    except http.HttpOff as off:
        return str(off)
    return None


CANCELLED_LINE = "this stage was cancelled (its task file says so); nothing was sent"


def run(coroutine: Any) -> Any:
    """Run one coroutine of the gRPC path (asyncio is imported only when one is needed)."""
    import asyncio

    return asyncio.run(coroutine)


def say_fallback(off: str | None) -> None:
    if off is not None:
        print(f"complete_activity: note: {off}; used gRPC", file=sys.stderr)


_WARNED: list[str] = []


def warn_vault(missing: tuple[str, ...]) -> None:
    """Say once that Vault is off because some of its variables are unset."""
    if missing and not _WARNED:
        _WARNED.append("vault")
        print(f"complete_activity: warning: {', '.join(missing)} unset, so Vault mTLS is off "
              f"(it needs all three)", file=sys.stderr)


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




def stage_withdrawn(task_file: str | None) -> bool:
    """Whether the task file says the stage was cancelled (the run may be gone already)."""
    if task_file is None:
        return False
    from taskdir.reading import load

    try:
        return load(Path(task_file), lean=True).get("status") == "cancelled"
    except Exception:
        return False


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


def settle_own_file(path: Path, status: str, message: str, lean: bool = True) -> None:
    """The stage is done: say so in its task file at once, so that it never looks like open
    work to another agent (the worker's own settlement then finds it finished). LEAN: without
    PyYAML or the directory's index when the lean reader and emitter are sure."""
    from taskdir.moves import FINAL_STATUS

    moved = FINAL_STATUS[status]
    note = f"stage {moved} with complete_activity.py"
    path = path.parent.resolve() / path.name  # the directory's own path, whatever was typed
    try:
        if lean:
            from taskdir.finishing import finish

            if finish(path, moved, note, message, finisher):
                return
        from taskdir import TaskDirectory, load

        document = load(path)
        TaskDirectory(path.parent).finish(str(document.get("id")), moved, note,
                                          output=message, by=finisher(document), path=path)
    except Exception as err:  # the completion went through; the worker settles the file too
        print(f"complete_activity: note: task file not updated ({type(err).__name__}); the "
              f"worker settles it", file=sys.stderr)


def finisher(document: dict[str, Any]) -> str:
    """Who finished the stage, as its task file's result and history say."""
    return str(document.get("target_agent") or "complete_activity")


def task_dir() -> Path:
    """This host's task directory, as the agents' tooling finds it."""
    return Path(os.environ.get(TASK_DIR_VARIABLE) or DEFAULT_TASK_DIR).expanduser()


def files_holding(token_text: str, token: bytes) -> list[Path]:
    """The task files in this host's task directory that hold TOKEN_TEXT (the token was
    given without --task-file): none, one, or two when a copy was planted beside it (it stops
    at two). Bounded: regular files of ours up to 1 MiB, the ones named for a stage of the
    token's run first, then the newest first."""
    from connection.task_token import read_task_token

    try:
        run_id = read_task_token(token).run_id
    except ValueError:
        return []
    from stages import run_task_keys
    from taskdir.documents import stage_task_id
    from taskdir.index import id_prefix

    root = task_dir()
    needle = token_text.encode("ascii", "ignore")
    if len(needle) < 16:
        return []
    try:
        with os.scandir(root) as entries:
            names = sorted((entry.name for entry in entries if entry.name.endswith(".yml")),
                           reverse=True)
    except (OSError, ValueError):
        return []
    ours = {stage_task_id(run_id, key)[:8] for key in run_task_keys()}
    named = [name for name in names if id_prefix(name) in ours]
    found: list[Path] = []
    for name in [*named, *(name for name in names if name not in named)]:
        if _holds(root / name, needle):
            found.append(root / name)
            if len(found) == 2:
                break
    return found


def with_own_file(request: Request, token: bytes) -> tuple[Request, Path | None]:
    """The task file this call finishes, and what it tells the call. For the token form, the
    file holding the token says where its stage lives; no file holding it means the token
    may be an older offer's."""
    if request.task_file is not None:
        return request, Path(request.task_file)
    if request.verb != "complete":
        return request, None
    holders = files_holding(request.token_text.strip(), token)
    if not holders:
        return request._replace(maybe_old=True), None
    if len(holders) > 1:  # a copy was planted: no file may say where the call goes
        print(f"complete_activity: note: more than one task file holds this token "
              f"({holders[0].name}, {holders[1].name}): the environment's settings stand and "
              f"neither file is marked", file=sys.stderr)
        return request, None
    own = holders[0]
    try:
        source = read_task_file(str(own))
    except ExitError:  # unreadable now: the environment's settings stand
        return request, own
    return request._replace(place=source.place, maybe_old=source.maybe_old), own


def _holds(path: Path, needle: bytes) -> bool:
    """Whether the regular file at PATH (not a link, at most a task file's size) has NEEDLE."""
    from safeio.regular import read_regular
    from taskdir.reading import MAX_TASK_FILE_BYTES

    try:
        return needle in read_regular(path, MAX_TASK_FILE_BYTES)
    except (OSError, ValueError):  # gone, a link, not a file, too large
        return False


def main(argv: list[str]) -> int:
    try:
        request = parse_args(argv)
        token = checked_token(request.token_text)
        request, own = with_own_file(request, token)
        deliver(request, token)
        if request.verb == "heartbeat":
            print("progress recorded")
            return Exit.OK
        if own is not None:
            settle_own_file(own, request.status, request.message)
    except ExitError as err:
        stream = sys.stdout if err.code == Exit.OK else sys.stderr
        print(f"complete_activity: {err}" if err.code != Exit.OK else str(err), file=stream)
        return err.code
    except KeyboardInterrupt:
        print("complete_activity: interrupted", file=sys.stderr)
        return Exit.ERROR
    except Exception as err:  # never a traceback for agents
        print(f"complete_activity: unexpected {type(err).__name__}", file=sys.stderr)
        return Exit.ERROR
    print(f"activity completed: {request.status}")
    return Exit.OK


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bootstrap

    bootstrap.ensure_dependencies("complete_activity", __file__)
    bootstrap.lighten_sdk_import()
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the gRPC core can abort while finalizing
