"""Orphaned dispatch: a stage started by a worker that died before writing its task file is
re-dispatched by the sweeper of a live worker."""

from __future__ import annotations

from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.worker import Worker

from activities.stage_settings import SettingsActivities
from models import BuildPhaseResult, StageTask
from testbed.agents import AgentSim
from testbed.helpers import eventually, files_of_type, reaches_stage, running_worker, start_pipeline
from worker import WORKFLOWS


@activity.defn(name="dispatch_stage")
async def prefab_that_dies(task: StageTask) -> BuildPhaseResult:
    """Takes the stage and never writes the file, like a worker killed at that instant."""
    activity.raise_complete_async()


async def test_orphaned_stage_is_redispatched(client, cfg, dirs, env):
    settings = SettingsActivities(cfg, index_builds=False)
    rogue = Worker(client, task_queue=cfg.task_queue, workflows=WORKFLOWS,
                   activities=[prefab_that_dies, settings.load_stage_settings])
    async with rogue:
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "orphan")

        async def started() -> bool:
            pending = (await handle.describe()).raw_description.pending_activities
            return any(p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                       for p in pending)

        await eventually(started)
    assert files_of_type(dirs["tasks"], "build_prefab") == []
    async with running_worker(client, cfg), AgentSim(dirs["tasks"], env,
                                                     {"build_plan": lambda d, p: None}):
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"), 60)

        await reaches_stage(handle, "implement")
    assert len(files_of_type(dirs["tasks"], "build_prefab")) == 1
    await handle.terminate("done")
