"""The worker daemon: connects, then serves its role (main: workflows; host: stage activities)."""

from __future__ import annotations

import bootstrap  # first: third-party imports below need the project's interpreter

# -OO when run (not when imported, as the tests and the testbed do): bootstrap says why
bootstrap.ensure_dependencies("worker", __file__, lean=__name__ == "__main__")
bootstrap.lighten_sdk_import()

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerDeploymentConfig,
    WorkflowRunner,
)

from activities.deps import Deps
from activities.registry import host_activities, main_activities
from allocator import release_forever
from config import WorkerConfig, load_config
from connection.client import connect
from connection.search_attributes import namespace_has_build_attributes
from exceptions import ConfigError, CredentialError, Exit, TemporalUnreachable
from logs import setup_logging
from observability import Telemetry, setup_telemetry
from sweeper import Sweeper
from workflows.build_pipeline import BuildPipelineWorkflow
from workflows.build_plan import BuildPlanWorkflow

bootstrap.allow_grpc()
log = logging.getLogger("worker")
WORKFLOWS = [BuildPipelineWorkflow, BuildPlanWorkflow]
# No sandbox in production: with our modules inside it, each run re-imports them (~0.25 s of
# CPU against ~0.01 s, docs/testing.md). The tests replay every history, and run workflows,
# in the SDK's sandbox with our modules imported inside it (tests/sandbox.py), so a clock
# read, random number, environment read or file I/O anywhere on a workflow's path fails one.
WORKFLOW_RUNNER = UnsandboxedWorkflowRunner()
PROJECT = Path(__file__).resolve().parent / "pyproject.toml"
DEPLOYMENT = "temporal-build-worker"  # the deployment our releases are versions of


def release() -> str:
    """Our release as pyproject.toml states it (a checkout is run, not installed: there is no
    package metadata to ask)."""
    try:
        with PROJECT.open("rb") as project:
            return str(tomllib.load(project)["project"]["version"])
    except (OSError, tomllib.TOMLDecodeError, KeyError):  # a copy without its pyproject.toml
        return "unknown"


def deployment_config() -> WorkerDeploymentConfig:
    """Our release as the worker's deployment version, which the server records on each
    workflow task (the Web UI shows it). Given, not left to the SDK, whose default build id
    hashes every loaded module's bytecode at start and so loads what `bootstrap` defers. For
    identification only: tasks are not routed by version (the workflows' patches keep older
    runs replaying on any worker)."""
    version = WorkerDeploymentVersion(deployment_name=DEPLOYMENT, build_id=release())
    return WorkerDeploymentConfig(version=version, use_worker_versioning=False)


async def build_worker(client: Client, config: WorkerConfig, telemetry: Telemetry | None = None,
                       runner: WorkflowRunner = WORKFLOW_RUNNER,
                       ) -> tuple[Worker, Sweeper, bool]:
    """The Worker for the configured role, and its sweeper.

    main: both workflows and every activity; host: only the activities of the stages
    routed to this host's queue (no workflows). RUNNER: the tests' sandbox, else production's."""
    deps = Deps.for_config(config, telemetry)
    if config.role == "host":
        index_builds, workflows, activities = False, [], host_activities(deps)
    else:
        index_builds = config.index_builds and await namespace_has_build_attributes(client)
        workflows, activities = WORKFLOWS, main_activities(deps, client, index_builds)
    worker = Worker(
        client, task_queue=config.task_queue, workflows=workflows, activities=activities,
        max_concurrent_activities=config.max_concurrent_activities,
        max_cached_workflows=config.max_cached_workflows,
        max_concurrent_workflow_tasks=config.max_concurrent_workflow_tasks,
        workflow_task_executor=ThreadPoolExecutor(config.max_concurrent_workflow_tasks,
                                                  thread_name_prefix="workflow-task"),
        graceful_shutdown_timeout=timedelta(seconds=10),
        workflow_runner=runner,
        deployment_config=deployment_config(),
    )
    sweeper = Sweeper(client, deps)
    return worker, sweeper, index_builds


async def run(config: WorkerConfig, stop: asyncio.Event) -> None:
    """Run the worker until STOP is set, then shut down gracefully."""
    telemetry = setup_telemetry(config.otel_endpoint, config.otel_service_name,
                                config.prometheus_bind_address, config.metrics_interval)
    client = await connect(config.client, interceptors=telemetry.interceptors,
                           runtime=telemetry.runtime)
    worker, sweeper, index_builds = await build_worker(client, config, telemetry)
    log.info("worker_started", extra={"task_queue": config.task_queue, "role": config.role,
                                      "namespace": client.namespace,
                                      "index_builds": index_builds})
    async with worker:
        say_ready(config)
        chores = [asyncio.create_task(sweeper.run_forever()),
                  asyncio.create_task(release_forever())]
        await stop.wait()
        for chore in chores:
            chore.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chore
    telemetry.shutdown()


def ready_line(config: WorkerConfig) -> str:
    """What a person starting the worker wants to see once: it serves, where, and as what."""
    client = config.client
    return (f"worker ready: role {config.role}, task queue {config.task_queue}, Temporal at "
            f"{client.address} ({client.address_from}), namespace {client.namespace}")


def say_ready(config: WorkerConfig) -> None:
    """The ready line on stderr, beside the JSON logs on stdout (which stay pure JSON)."""
    print(ready_line(config), file=sys.stderr, flush=True)


def main() -> int:
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    try:
        config = load_config()
    except ConfigError as err:
        setup_logging()
        log.error("config_invalid", extra={"error": str(err)})
        return Exit.CONFIG
    try:
        setup_logging(config.log_level, config.log_file)
    except OSError as err:  # e.g. LOG_FILE names a directory or a link: a setting, not a bug
        setup_logging(config.log_level)
        log.error("config_invalid", extra={"error": f"LOG_FILE: {err.strerror}"})
        return Exit.CONFIG
    log.info("config_loaded", extra={"config": config.describe()})
    for event, details in config.warnings:
        log.warning(event, extra=details)
    channels = config.channels()
    if channels["task_file_decision"]:  # forgeable by anyone who can write the directory
        log.warning("channels", extra={"channels": channels, "effect": "a writer of the task "
                    "directory can decide blocks and finish stages; FILE_CHANNEL=closed "
                    "leaves that to Temporal"})
    else:
        log.info("channels", extra={"channels": channels})
    log.info("worker_starting", extra={"address": config.client.address})

    async def _main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run(config, stop)
        except CredentialError as err:
            log.error("credentials_unavailable", extra={"error": str(err)})
            return Exit.CONFIG
        except TemporalUnreachable as err:
            log.error("temporal_unreachable", extra={"error": str(err)})
            return Exit.UNREACHABLE
        log.info("worker_stopped")
        return Exit.OK

    return asyncio.run(_main())


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)  # skip interpreter teardown: the gRPC core can abort while finalizing
