"""Builds are findable by BuildName/TargetAgent; a namespace without them still works."""

from __future__ import annotations

import logging
import subprocess
import uuid

from temporalio.api.enums.v1 import WorkflowTaskFailedCause

from config import load_config
from testbed.agents import AgentSim
from testbed.helpers import (
    connect_client,
    eventually,
    files_of_type,
    running_worker,
    start_pipeline,
    worker_env,
)


async def test_pipeline_is_findable_by_build_name(client, cfg, dirs, env, worker):
    async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "findable-build",
                                      agent="ops")
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))

    async def found() -> list[str]:
        return [w.id async for w in client.list_workflows(
            "BuildName = 'findable-build' AND TargetAgent = 'ops'")]

    assert await eventually(found, 30, 0.3) == [handle.id]
    await handle.terminate("done")


async def test_namespace_without_attributes_logs_once_and_works(server, cli_path, dirs, caplog):
    namespace = f"plain-{uuid.uuid4().hex[:6]}"
    subprocess.run([cli_path, "operator", "namespace", "create", "--address", server.address,
                    "-n", namespace], check=True, capture_output=True)
    plain_client = await connect_client(server.address, namespace=namespace)
    env = worker_env(server, dirs, TEMPORAL_NAMESPACE=namespace)
    config = load_config(env)

    async def namespace_ready() -> bool:
        try:
            await plain_client.count_workflows()
            return True
        except Exception:
            return False

    await eventually(namespace_ready, 30, 0.3)
    caplog.set_level(logging.WARNING)
    async with running_worker(plain_client, config), AgentSim(
            dirs["tasks"], env, {"build_plan": lambda d, p: None}):
        handle = await start_pipeline(plain_client, config.task_queue, dirs["tasks"], "plain")
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"), 30)
        await handle.terminate("done")
    missing = [r for r in caplog.records if r.getMessage() == "search_attributes_missing"]
    assert len(missing) == 1
    history = await handle.fetch_history()
    # the server's own FORCE_CLOSE failure records our terminate meeting a task in flight
    failed = [e.workflow_task_failed_event_attributes for e in history.events
              if e.HasField("workflow_task_failed_event_attributes")
              and e.workflow_task_failed_event_attributes.cause
              != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND]
    assert not failed, [(f.cause, f.failure.message) for f in failed]
