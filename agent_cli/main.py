"""One call of the agents' CLI, start to exit code: never a traceback, never the token."""

from __future__ import annotations

import sys

from agent_cli.delivery import deliver, with_own_file
from agent_cli.request import checked_token, parse_args
from agent_cli.task_files import settle_own_file
from exceptions import Exit, ExitError


def main(argv: list[str]) -> int:
    """Carry out the call ARGV asks for; its exit code (exceptions.Exit), one line if not 0."""
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

