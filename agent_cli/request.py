"""What one call of the CLI asks for, from its arguments (and its task file), checked before
anything is sent."""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

from agent_cli.task_files import TokenSource, read_task_file
from connection.settings import StageLocation
from contract import FAILED, SUCCESS, decode_token
from exceptions import Exit, ExitError

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
        hint = "; a task file is given as --task-file PATH" if _names_a_file(text) else ""
        raise ExitError(f"{err}{hint}", Exit.INVALID) from None


def _names_a_file(text: str) -> bool:
    """TEXT, given where the token goes, is a task file's path (an agent forgot --task-file)."""
    text = text.strip()
    return text.endswith((".yml", ".yaml")) or os.path.isfile(text)


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
    withdrawn: bool = False  # its task file says the stage was cancelled


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
    if source.path is None and source.token in STATUSES:
        raise ExitError("no task token before the status: the first argument is the token "
                        "(or - to read it from stdin, or --task-file PATH)", Exit.USAGE)
    if not rest:
        raise ExitError(f"the status is missing: success or failed\n{USAGE}", Exit.USAGE)
    status = rest[0]
    if status not in STATUSES:
        shown = status[:40].encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise ExitError(f"status must be 'success' or 'failed', got {shown!r}", Exit.USAGE)
    return Request("complete", source.token, status, check_message(" ".join(rest[1:])),
                   source.path, source.place, source.maybe_old, source.withdrawn)


def token_source(argv: list[str]) -> tuple[TokenSource, list[str]]:
    """The token's source and the arguments after it, from `--task-file PATH`,
    `--task-file=PATH`, `-` (stdin) or the token itself."""
    if argv[:1] == ["--task-file"] and len(argv) >= 2:
        return read_task_file(argv[1]), argv[2:]
    if argv and argv[0].startswith("--task-file="):
        return read_task_file(argv[0].split("=", 1)[1]), argv[1:]
    if argv[:1] == ["--task-file"]:
        raise ExitError(f"--task-file needs the task file's path\n{USAGE}", Exit.USAGE)
    if argv and argv[0].startswith("--"):
        shown = argv[0][:40].encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise ExitError(f"unknown option {shown!r}\n{USAGE}", Exit.USAGE)
    if not argv:
        raise ExitError(USAGE, Exit.USAGE)
    if argv[0] == "-":
        return TokenSource(sys.stdin.read(MAX_TOKEN_CHARS + 2)), argv[1:]
    return TokenSource(argv[0]), argv[1:]
