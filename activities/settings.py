"""load_stage_settings: hand the worker's stage timings to a workflow run (a local activity)."""

from __future__ import annotations

from temporalio import activity

from config import WorkerConfig
from models import StageSettings, StageTimings


class SettingsActivities:
    """Recorded in history once per run, so replays see the same values."""

    def __init__(self, config: WorkerConfig, index_builds: bool) -> None:
        timings = {name: getattr(config, name) for name in StageTimings.model_fields}
        self.settings = StageSettings(index_builds=index_builds, **timings)

    @activity.defn(name="load_stage_settings")
    async def load_stage_settings(self) -> StageSettings:
        return self.settings
