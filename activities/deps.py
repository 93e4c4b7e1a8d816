"""What activities need from the worker process: config, notifiers, telemetry."""

from __future__ import annotations

from dataclasses import dataclass

from config import WorkerConfig
from notify.base import NotifierGroup
from observability import Telemetry


@dataclass
class Deps:
    """Shared by every activity class; built once in worker.py."""

    config: WorkerConfig
    notifiers: NotifierGroup
    telemetry: Telemetry
