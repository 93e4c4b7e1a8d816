#!/usr/bin/env python3
"""Operator CLI: start, list, inspect, approve, reject and cancel builds without writing JSON."""

from __future__ import annotations

import bootstrap  # first: third-party imports below need the project's interpreter

bootstrap.ensure_dependencies("buildctl", __file__)
bootstrap.lighten_sdk_import()

import argparse
import asyncio
import json
import logging
import os
import sys

from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config import load_config
from connection.client import connect
from connection.rpc_exits import rpc_exit
from exceptions import Exit, ExitError, TemporalUnreachable, TemporalWorkerError
from operations.common import shown
from operations.decide import cmd_cancel, cmd_decide
from operations.listing import cmd_list
from operations.start import cmd_plan, cmd_start
from operations.status import cmd_status
from operations.view import print_human


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="buildctl.py", description=__doc__)
    root.add_argument("--json", action="store_true", help="machine-readable output")
    commands = root.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        """A subcommand that takes --json too (it may come anywhere on the line)."""
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="machine-readable output")
        return sub

    start = command("start", "start a BuildPipelineWorkflow")
    start.add_argument("--build-name", required=True)
    start.add_argument("--plan-path", required=True)
    start.add_argument("--task-id", required=True, help="originating task-queue task id")
    start.add_argument("--agent", required=True, help="target agent")
    start.add_argument("--id", help="workflow id (default build-<name>-<random>)")
    start.add_argument("--without-origin-file", action="store_true",
                       help="start even though the originating task has no task file here "
                            "(e.g. it lives on another host)")
    start.add_argument("--allow-shared-origin", action="store_true",
                       help="start even though a running build already holds the "
                            "originating task (both then decide through it)")
    plan = command("plan", "start a BuildPlanWorkflow from a YAML plan")
    plan.add_argument("file")
    plan.add_argument("--id")
    listing = command("list", "recent builds: name, start, status, stage or outcome")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--running", action="store_true", help="only running builds")
    listing.add_argument("--started-by-0x", action="store_true",
                         help="only running builds a 0.x release started (drain them before "
                              "upgrading to 1.0)")
    listing.add_argument("--waiting", action="store_true",
                         help="only builds waiting for an operator decision")
    status = command("status", "progress of one build")
    status.add_argument("workflow_id")
    approve = command("approve", "approve a build waiting on blocks")
    approve.add_argument("workflow_id")
    approve.add_argument("--by", required=True)
    approve.add_argument("--reason", default="")
    reject = command("reject", "reject a build waiting on blocks")
    reject.add_argument("workflow_id")
    reject.add_argument("--by", required=True)
    reject.add_argument("--reason", required=True)
    cancel = command("cancel", "cancel a build")
    cancel.add_argument("workflow_id")
    return root


COMMANDS = {"start": cmd_start, "plan": cmd_plan, "list": cmd_list, "status": cmd_status,
            "approve": cmd_decide, "reject": cmd_decide, "cancel": cmd_cancel}


def check_text_arguments(args: argparse.Namespace) -> None:
    """Arguments reach Temporal as UTF-8: undecodable bytes from the shell are refused."""
    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ExitError(f"{name.replace('_', '-')} is not valid UTF-8 text",
                                Exit.INVALID) from None


async def run(args: argparse.Namespace) -> dict:
    check_text_arguments(args)
    try:
        config = load_config()
        client = await connect(config.client)
    except TemporalUnreachable:
        raise ExitError(f"cannot reach Temporal at {config.client.address}",
                        Exit.UNREACHABLE) from None
    except TemporalWorkerError as err:
        raise ExitError(str(err), Exit.CONFIG) from None
    try:
        return await COMMANDS[args.command](client, config, args)
    except WorkflowAlreadyStartedError:
        raise ExitError(f"a workflow with id {getattr(args, 'id', None) or '?'} is already "
                        f"running (choose another --id)", Exit.REFUSED) from None
    except RPCError as err:
        code = rpc_exit(err, Exit.REFUSED)
        messages = {
            Exit.NOT_FOUND: f"not found: {getattr(args, 'workflow_id', '')}".strip(),
            Exit.UNREACHABLE: f"cannot reach Temporal at {config.client.address}"}
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            messages[code] = "a workflow with that id is already running"
        raise ExitError(messages.get(code, f"Temporal refused: {err.status.name}: "
                                           f"{err.message[:200]}"), code) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.disable(logging.WARNING)  # the CLI speaks through its own output only
    try:
        result = asyncio.run(run(args))
    except ExitError as err:
        if args.json:
            print(json.dumps({"error": str(err), "exit_code": err.code}))
        else:
            print(f"buildctl: {shown(err, 2000)}", file=sys.stderr)
        return err.code
    except Exception as err:
        print(f"buildctl: unexpected {type(err).__name__}: {shown(err, 200)}", file=sys.stderr)
        return Exit.ERROR
    if args.json:
        print(json.dumps(result))
    else:
        print_human(args.command, result)
    return Exit.OK


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`| head`): what it read is all it wanted
        code = Exit.OK
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the gRPC core can abort while finalizing
