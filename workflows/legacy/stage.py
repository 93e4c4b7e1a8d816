"""One agent stage of a run v0.5 started: v0.5's activity and arguments, our progress."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from models import BuildPhaseResult, Progress
    from stages import Stage
    from taskdir.names import stage_task_id
    from workflows.stage_results import agent_retry, stage_result

HOUR = 3600.0


class StageHost(Protocol):
    """What a v0.5 run uses of the native workflow that carries it."""

    status: Progress

    def enter(self, stage: str, waiting_on: str | None, queue: str | None = None) -> None: ...

    def done(self, stage: str) -> None: ...

    async def withdraw(self, task_id: str, stage: str, queue: str | None = None) -> None: ...


async def run_v05_stage(host: StageHost, name: str, stage: Stage, agent: str,
                        args: list[Any], hours: float, attempts: int = 1,
                        phase: int | None = None) -> BuildPhaseResult:
    """v0.5's activity for STAGE by its name, with v0.5's limit; shown as NAME."""
    task_id = stage_task_id(workflow.info().run_id, stage.task_key(phase))
    host.status.task_ids[name] = task_id
    host.enter(name, f"agent {agent}: task {task_id}")
    try:
        raw = await workflow.execute_activity(
            stage.activity, args=args, result_type=RawValue,
            start_to_close_timeout=timedelta(seconds=hours * HOUR),
            retry_policy=agent_retry(attempts),
            summary=f"{name} · agent {agent} · run started by v0.5")
    except asyncio.CancelledError:
        await host.withdraw(task_id, name)
        raise
    result = stage_result(raw, f"Stage {name}")
    host.done(name)
    return result
