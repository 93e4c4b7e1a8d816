"""Starting builds and plans: every argument checked and named before the server sees it."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import uuid
from pathlib import Path

import yaml
from pydantic import ValidationError
from temporalio.client import (
    Client,
)

from config import WorkerConfig
from contract import PIPELINE, RUNNING_BUILDS_QUERY
from exceptions import Exit, ExitError
from models import (
    BuildPipelineInput,
    BuildPlanInput,
    plan_path_problem,
)
from operations.common import (
    bounded,
    shown,
    ui_link,
    validation_message,
)
from safeio import untrusted_yaml
from taskdir import TaskDirectory
from workflows.build_pipeline import BuildPipelineWorkflow
from workflows.build_plan import BuildPlanWorkflow

MAX_PLAN_BYTES = 1024 * 1024


# The start options as the operator types them, and rules said in words (not patterns).
OPTIONS = {"build_name": "--build-name", "plan_path": "--plan-path", "task_id": "--task-id",
           "target_agent": "--agent"}


IN_WORDS = {("build_name", "string_pattern_mismatch"):
            "must be lower-case letters, digits and '-', starting with a letter or digit"}


def check_origin(config: WorkerConfig, task_id: str) -> None:
    """Refuse a start whose originating task has no file: its decisions could never be made."""
    try:
        found = TaskDirectory(config.task_dir).find(task_id)
    except (OSError, ValueError):
        found = None
    if found is None:
        raise ExitError(f"originating task {task_id} has no task file in {config.task_dir}; "
                        f"write it first (README: The originating task) or pass "
                        f"--without-origin-file", Exit.REFUSED)


def plan_file_problem(plan_path: str) -> str | None:
    """Why the plan cannot be read here (None: it can): its stages would only fail later."""
    try:
        info = os.stat(plan_path)
    except FileNotFoundError:
        return f"{plan_path} does not exist"
    except OSError as err:
        return f"{plan_path} cannot be read: {err.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{plan_path} is not a regular file"
    try:
        os.close(os.open(plan_path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as err:
        return f"{plan_path} cannot be read: {err.strerror}"
    return None


def argument_problems(err: ValidationError | None, plan_path: str) -> list[str]:
    """Every invalid start argument, named as typed and said in words."""
    problems = []
    for error in err.errors() if err else []:
        field = str(error["loc"][0]) if error["loc"] else "input"
        why = IN_WORDS.get((field, error["type"])) or error["msg"].removeprefix("Value error, ")
        problems.append(f"{OPTIONS.get(field, field)}: {why}")
    if not any(problem.startswith(OPTIONS["plan_path"]) for problem in problems):
        path_problem = plan_path_problem(plan_path)
        problem = (path_problem.split(": ", 1)[-1] if path_problem
                   else plan_file_problem(plan_path))
        if problem:
            problems.append(f"{OPTIONS['plan_path']}: {problem}")
    return problems


def start_input(args: argparse.Namespace) -> BuildPipelineInput:
    """The start arguments as the workflow's input, or one line naming every invalid one."""
    params, error = None, None
    try:
        params = BuildPipelineInput(build_name=args.build_name, plan_path=args.plan_path,
                                    task_id=args.task_id, target_agent=args.agent)
    except ValidationError as err:
        error = err
    problems = argument_problems(error, args.plan_path)
    if problems or params is None:
        raise ExitError("invalid arguments: " + "; ".join(problems), Exit.INVALID)
    return params


async def started_origin(client: Client, workflow_id: str) -> str | None:
    """The originating task a running pipeline was started for (its first event's input)."""
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        values = await client.data_converter.decode(payloads) if payloads else []
        first = values[0] if values else None
        return str(first.get("task_id")) if isinstance(first, dict) else None
    return None


async def origin_holders(client: Client, config: WorkerConfig, task_id: str) -> list[str]:
    """The running pipelines that already hold TASK_ID as their originating task."""
    query = RUNNING_BUILDS_QUERY.format(task_queue=config.build_queue)
    ids = [run.id async for run in client.list_workflows(query)
           if run.workflow_type == PIPELINE]
    origins = await bounded([started_origin(client, workflow_id) for workflow_id in ids])
    return [workflow_id for workflow_id, origin in zip(ids, origins, strict=True)
            if origin == task_id]


async def check_shared_origin(client: Client, config: WorkerConfig, task_id: str) -> None:
    """Refuse a second running build on one originating task: both would decide through it."""
    holders = await origin_holders(client, config, task_id)
    if holders:
        raise ExitError(f"originating task {task_id} is held by running build "
                        f"{shown(holders[0])}; pass --allow-shared-origin to start another "
                        f"on it", Exit.REFUSED)


async def cmd_start(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    params = await asyncio.to_thread(start_input, args)
    if not args.without_origin_file:
        await asyncio.to_thread(check_origin, config, params.task_id)
    if not args.allow_shared_origin:
        await check_shared_origin(client, config, params.task_id)
    workflow_id = args.id or f"build-{params.build_name}-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        BuildPipelineWorkflow.run, params.model_dump(), id=workflow_id,
        task_queue=config.task_queue,
        static_summary=f"Build {params.build_name} for agent {params.target_agent}",
        static_details=f"Plan: {params.plan_path}\n\nOriginating task: {params.task_id}")
    return {"workflow_id": workflow_id, "ui": ui_link(config, workflow_id)}


async def cmd_plan(client: Client, config: WorkerConfig, args: argparse.Namespace) -> dict:
    try:
        raw = untrusted_yaml.load_file(Path(args.file), MAX_PLAN_BYTES)
        plan = BuildPlanInput.model_validate(raw)
    except OSError as err:
        raise ExitError(f"cannot read {args.file}: {err.strerror}", Exit.INVALID) from None
    except untrusted_yaml.InputRefused as err:
        raise ExitError(f"{args.file}: {err}", Exit.INVALID) from None
    except yaml.YAMLError:
        raise ExitError(f"{args.file} is not valid UTF-8 YAML", Exit.INVALID) from None
    except ValidationError as err:
        raise ExitError(validation_message(err), Exit.INVALID) from None
    workflow_id = args.id or f"plan-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        BuildPlanWorkflow.run, plan.model_dump(), id=workflow_id, task_queue=config.task_queue,
        static_summary=f"Plan {plan.plan_name}: {len(plan.phases)} phase(s)")
    return {"workflow_id": workflow_id, "ui": ui_link(config, workflow_id)}
