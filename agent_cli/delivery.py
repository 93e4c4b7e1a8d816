"""Where the call goes and how: Temporal's HTTP API first (no SDK import), gRPC when chosen or
once when HTTP is off; for the token form, the task file holding the token."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agent_cli.notes import say_fallback, warn_vault
from agent_cli.request import Request
from agent_cli.task_files import files_holding, load_settling, read_task_file, stage_withdrawn
from exceptions import Exit, ExitError, TemporalWorkerError

CANCELLED_LINE = "this stage was cancelled (its task file says so); nothing was sent"


def deliver(request: Request, token: bytes) -> None:
    """The call over Temporal's HTTP API (no SDK import), or over gRPC when AGENT_TRANSPORT
    says so, or once when HTTP is off (said on stderr; one line when gRPC is off too)."""
    from connection import http_completion as http

    if request.verb == "complete" and request.withdrawn:
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
        from agent_cli.over_grpc import call, run

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
            lambda: offered_again(request, token),
            lambda: stage_withdrawn(request.task_file), load_settling), token)
    except http.HttpOff as off:
        return str(off)
    return None


def offered_again(request: Request, token: bytes) -> bool:
    """Whether TOKEN's stage moved on to a newer offer (asked over gRPC, loaded only now)."""
    from agent_cli.over_grpc import run, was_offered_again

    return run(was_offered_again(request, token))


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
