"""load_stage_settings: the worker's stage timings handed to a workflow run (a local activity)."""

from __future__ import annotations

from temporalio import activity

from config import WorkerConfig
from models import StageSettings


class SettingsActivities:
    """Recorded in history once per run, so replays see the same values."""

    def __init__(self, config: WorkerConfig, index_builds: bool) -> None:
        self.settings = StageSettings(index_builds=index_builds,
                                      agent_queues=config.agent_queues,
                                      **config.timings.model_dump())

    @activity.defn(name="load_stage_settings")
    async def load_stage_settings(self) -> StageSettings:
        return self.settings
