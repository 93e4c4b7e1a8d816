"""What activities need from the worker process: config, notifiers, telemetry."""

from __future__ import annotations

from dataclasses import dataclass

from config import WorkerConfig
from notify.base import NotifierGroup
from notify.factory import build_notifiers
from observability import Telemetry
from taskdir import TaskDirectory


@dataclass
class Deps:
    """Shared by every activity class (and the sweeper's task directory); built once."""

    config: WorkerConfig
    notifiers: NotifierGroup
    telemetry: Telemetry
    tasks: TaskDirectory

    @classmethod
    def for_config(cls, config: WorkerConfig, telemetry: Telemetry | None = None) -> Deps:
        # The worker's one index lives as long as the worker: it follows the directories'
        # events instead of listing them again after each change.
        tasks = TaskDirectory(config.task_dir, config.task_style(), config.file_approvers,
                              watch=True)
        return cls(config=config, notifiers=build_notifiers(config),
                   telemetry=telemetry or Telemetry(), tasks=tasks)
