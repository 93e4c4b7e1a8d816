"""What every phase of the bench shares: the mode, the scratch folder, the report, a worker
to start, and the dev server's figures the cluster's rows are compared with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Report
from testbed.cluster import TemporalCluster
from testbed.devserver import DevServer
from testbed.helpers import worker_env
from testbed.processes import WorkerProcess


@dataclass
class Bench:
    """One run's shared state, handed to each phase (phases keep no state of their own)."""

    quick: bool
    base: Path
    report: Report = field(default_factory=Report)
    on_dev: dict[str, float] = field(default_factory=dict)  # capacity, compared on the cluster
    dev_rates: list[float] = field(default_factory=list)  # throughput, compared on the cluster
    idle_rss: float = float("nan")

    def row(self, what: str, figure: str, target: str, result: str) -> None:
        """One row of the table (the report owns them)."""
        self.report.row(what, figure, target, result)

    def dirs(self, name: str) -> dict[str, Path]:
        """A fresh worker's folders under the scratch folder, with a notifier that succeeds."""
        dirs = {key: self.base / name / key for key in ("home", "tasks", "audit", "summaries")}
        dirs["home"].mkdir(parents=True)
        script = dirs["home"] / "send-matrix.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
        return dirs

    async def start_worker(self, server: DevServer | TemporalCluster, dirs: dict[str, Path],
                           **env_overrides: str) -> tuple[WorkerProcess, dict[str, str]]:
        """Our worker as production runs it (a process), once it says it has started."""
        env = worker_env(server, dirs, **env_overrides)
        worker = WorkerProcess(env, dirs["home"] / "worker.log")
        worker.start()
        await worker.wait_event("worker_started")
        return worker, env

    def parked_count(self) -> int:
        """How many pipelines the capacity rows park."""
        return 100 if self.quick else 1000
