"""workflows/versions.py and the upgrade to 1.0: a run a 0.x release started is named, listed
and never continued on 1.0's path (v0.5's runs go through their own door: test_v05_adoption)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from contract import EARLIER_MARKERS, PIPELINE
from testbed.helpers import buildctl, eventually, running_worker


@workflow.defn(name=PIPELINE)
class StartedBy010:
    """What a 0.10 worker recorded first in every run it started: its marker."""

    @workflow.run
    async def run(self, _raw: dict[str, Any]) -> None:
        workflow.patched(EARLIER_MARKERS[-1])
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="approve")
    def approve(self, _decision: dict[str, Any]) -> None:
        """Only to hand the run a new workflow task."""


async def workflow_task_failures(client: Client, workflow_id: str) -> list[str]:
    events = [event async for event in client.get_workflow_handle(workflow_id)
              .fetch_history_events()]
    return [event.workflow_task_failed_event_attributes.failure.message for event in events
            if event.HasField("workflow_task_failed_event_attributes")]


async def test_a_run_0x_started_is_listed_and_named_by_the_1_0_worker(client, cfg, env):
    run_id = f"old-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=cfg.task_queue, workflows=[StartedBy010],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(
            PIPELINE, {"build_name": "old", "plan_path": "/plans/old.md",
                       "task_id": "old-request-0001", "target_agent": "dev"},
            id=run_id, task_queue=cfg.task_queue,
            task_timeout=timedelta(seconds=2))

        async def marked() -> bool:
            return any([e.HasField("marker_recorded_event_attributes")
                        async for e in handle.fetch_history_events()])

        await eventually(marked)
    code, out, err = await buildctl(env, "list", "--started-by-0x")
    assert code == 0, err
    assert run_id in out and "started by 0.x" in out
    async with running_worker(client, cfg):
        await handle.signal("approve", {"by": "x"})
        failures = await eventually(lambda: workflow_task_failures(client, run_id), 60)
    assert "was started by a 0.x release (marker lean-start-0.10)" in failures[0], failures
    await handle.terminate("test over")
