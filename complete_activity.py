#!/usr/bin/env python3
"""The agents' CLI: resume a suspended stage with success or failure (never prints the token)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import sys
from pathlib import Path

USAGE = (
    "usage: complete_activity.py TOKEN|- success|failed [message]\n"
    "       complete_activity.py --task-file PATH success|failed [message]"
)
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BAD_TOKEN = 0, 1, 2, 3
EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_CONFIG = 4, 5, 6
MAX_TOKEN_CHARS = 16384
MAX_MESSAGE_CHARS = 100_000
STATUSES = ("success", "failed")


class CliError(Exception):
    """A one-line message and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def decode_token(text: str) -> bytes:
    """Strict base64 → bytes; the token itself never appears in a message."""
    text = text.strip()
    if not text:
        raise CliError("task token is empty", EXIT_BAD_TOKEN)
    if len(text) > MAX_TOKEN_CHARS:
        raise CliError(f"task token is longer than {MAX_TOKEN_CHARS} characters", EXIT_BAD_TOKEN)
    try:
        token = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CliError("task token is not valid base64", EXIT_BAD_TOKEN) from None
    if not token:
        raise CliError("task token is empty", EXIT_BAD_TOKEN)
    return token


def token_from_task_file(path: str) -> str:
    """payload.task_token of a task YAML file."""
    import yaml

    try:
        with open(path, "rb") as handle:
            raw = handle.read(1024 * 1024 + 1)
    except OSError as err:
        raise CliError(f"cannot read task file {path}: {err.strerror}", EXIT_USAGE) from None
    try:
        document = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        raise CliError(f"task file {path} is not valid YAML", EXIT_BAD_TOKEN) from None
    payload = document.get("payload") if isinstance(document, dict) else None
    token = payload.get("task_token") if isinstance(payload, dict) else None
    if not isinstance(token, str):
        raise CliError(f"task file {path} has no payload.task_token", EXIT_BAD_TOKEN)
    return token


def parse_args(argv: list[str]) -> tuple[str, str, str]:
    """Return (token text, status, message) or raise CliError(usage)."""
    if argv[:1] in (["-h"], ["--help"]):
        raise CliError(USAGE, EXIT_OK)
    if argv[:1] == ["--task-file"]:
        if len(argv) < 3:
            raise CliError(USAGE, EXIT_USAGE)
        token_text, rest = token_from_task_file(argv[1]), argv[2:]
    elif argv and argv[0].startswith("--task-file="):
        token_text, rest = token_from_task_file(argv[0].split("=", 1)[1]), argv[1:]
    else:
        if len(argv) < 2:
            raise CliError(USAGE, EXIT_USAGE)
        token_text, rest = argv[0], argv[1:]
        if token_text == "-":
            token_text = sys.stdin.read(MAX_TOKEN_CHARS + 2)
    status = rest[0]
    if status not in STATUSES:
        raise CliError(f"status must be 'success' or 'failed', got {status[:40]!r}", EXIT_USAGE)
    message = " ".join(rest[1:])
    if len(message) > MAX_MESSAGE_CHARS:
        raise CliError(f"message is longer than {MAX_MESSAGE_CHARS} characters", EXIT_USAGE)
    return token_text, status, message


async def complete(token: bytes, status: str, message: str) -> None:
    """Connect with the worker's settings and resume the activity."""
    from temporalio.client import AsyncActivityHandle  # noqa: F401  (import cost paid here)
    from temporalio.converter import DataConverter
    from temporalio.exceptions import ApplicationError
    from temporalio.service import RPCError, RPCStatusCode

    from client_settings import load_client_settings
    from exceptions import TemporalWorkerError
    from temporal_client import connect

    try:
        settings = load_client_settings()
        if settings.vault_missing:
            print(f"complete_activity: warning: {', '.join(settings.vault_missing)} unset, "
                  f"so Vault mTLS is off (it needs all three)", file=sys.stderr)
        client = await connect(settings, data_converter=DataConverter.default)
    except TemporalWorkerError as err:
        raise CliError(str(err), EXIT_CONFIG) from None
    except RuntimeError:
        raise CliError(f"cannot reach Temporal at {settings.address}", EXIT_UNREACHABLE) from None
    handle = client.get_async_activity_handle(task_token=token)
    try:
        if status == "success":
            await handle.complete({"status": "success", "output": message})
        else:
            await handle.fail(ApplicationError(message or "Phase failed",
                                               type="PhaseFailedError", non_retryable=True))
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CliError("no such activity: already completed, timed out, cancelled, or "
                           "from another namespace", EXIT_NOT_FOUND) from None
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise CliError("Temporal rejected the task token as malformed",
                           EXIT_BAD_TOKEN) from None
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise CliError(f"cannot reach Temporal at {settings.address}",
                           EXIT_UNREACHABLE) from None
        raise CliError(f"Temporal refused the completion ({err.status.name})",
                       EXIT_ERROR) from None


def main(argv: list[str]) -> int:
    try:
        token_text, status, message = parse_args(argv)
        token = decode_token(token_text)
        asyncio.run(complete(token, status, message))
    except CliError as err:
        stream = sys.stdout if err.code == EXIT_OK else sys.stderr
        print(f"complete_activity: {err}" if err.code != EXIT_OK else str(err), file=stream)
        return err.code
    except KeyboardInterrupt:
        print("complete_activity: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:  # never a traceback for agents
        print(f"complete_activity: unexpected {type(err).__name__}", file=sys.stderr)
        return EXIT_ERROR
    print(f"activity completed: {status}")
    return EXIT_OK


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the gRPC core can abort while finalizing
