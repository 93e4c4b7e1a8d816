"""v0.5's activities, by v0.5's names and call shapes, for the runs v0.5 started.

Registered by `legacy_activities` alone; nothing native imports this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.blocks import BlockActivities
from activities.deps import Deps
from activities.dispatch import StageDispatch
from activities.summary import SummaryActivities
from contract import BUILD_REJECTED
from models import BuildPhaseInput, BuildPhaseResult, StageTask, WorkflowSummary, finished_outcome
from stages import AUDIT, CLOSE, FIXES, IMPLEMENT, PHASE, PREFAB, Stage
from taskdir.names import stage_task_id
from taskdir.vocabulary import DECISIONS


def _task(stage: Stage, agent: str, build: str, phase: int | None = None,
          **fields: Any) -> StageTask:
    """A v0.5 call's stage: v0.5 passes no task id, so it is derived from the run here."""
    task_id = stage_task_id(activity.info().workflow_run_id, stage.task_key(phase))
    return StageTask(task_id=task_id, kind=stage.kind, target_agent=agent, build=build,
                     fields=fields)


class V05Activities:
    """v0.5's agent stages, its polling block wait and its nine-argument summary."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.stages = StageDispatch(deps)
        self.blocks = BlockActivities(deps)
        self.summaries = SummaryActivities(deps)

    @activity.defn(name=PREFAB.activity)
    async def prefab_scaffolding(self, build_name: str, plan_path: str) -> BuildPhaseResult:
        await self.stages.dispatch(_task(PREFAB, PREFAB.agent or "", build_name,
                                         build_name=build_name, plan_path=plan_path))

    @activity.defn(name=IMPLEMENT.activity)
    async def implement_build(self, build_name: str, originating_task_id: str,
                              target_agent: str) -> BuildPhaseResult:
        await self.stages.dispatch(_task(IMPLEMENT, target_agent, build_name,
                                         build_name=build_name,
                                         originating_task_id=originating_task_id))

    @activity.defn(name=AUDIT.activity)
    async def request_security_audit(self, build_name: str,
                                     plan_path: str) -> BuildPhaseResult:
        await self.stages.dispatch(_task(AUDIT, AUDIT.agent or "", build_name,
                                         build_name=build_name, plan_path=plan_path))

    @activity.defn(name=FIXES.activity)
    async def apply_flag_fixes(self, build_name: str, flags: list[str],
                               target_agent: str) -> BuildPhaseResult:
        await self.stages.dispatch(_task(FIXES, target_agent, build_name,
                                         build_name=build_name, flags=flags))

    @activity.defn(name=CLOSE.activity)
    async def close_build(self, build_name: str, target_agent: str) -> BuildPhaseResult:
        await self.stages.dispatch(_task(CLOSE, target_agent, build_name,
                                         build_name=build_name))

    @activity.defn(name=PHASE.activity)
    async def execute_build_phase(self, phase: BuildPhaseInput) -> BuildPhaseResult:
        task = _task(PHASE, phase.agent_type, phase.plan_name, phase.phase_number,
                     **phase.model_dump(exclude={"agent_type"}))
        await self.stages.dispatch(task.model_copy(update={"context_refs": phase.context_refs}))

    @activity.defn(name="wait_for_block_resolution")
    async def wait_for_block_resolution(self, build_name: str, task_id: str) -> None:
        """v0.5's contract: return (nothing) only once the originating task is `approved`.

        Polls the task file and heartbeats until then; a refusal ends the attempt with a
        non-retryable error instead of ever letting the build close without approval.
        """
        interval = self.deps.config.timings.block_check_interval
        while True:
            activity.heartbeat()
            status = (await self.blocks.credible_decision(task_id)).status
            if status == "approved":
                activity.logger.info("block_wait_approved", extra={"task_id": task_id})
                return
            if DECISIONS.get(status or "") == "rejected":
                raise ApplicationError(
                    f"Build {build_name}: originating task {task_id} was set to {status}",
                    type=BUILD_REJECTED, non_retryable=True)
            await asyncio.sleep(interval)

    @activity.defn(name="summarize_workflow")
    async def summarize_workflow(self, workflow_id: str, build_name: str, started_at: str,
                                 completed_at: str, phases_completed: list[str],
                                 blocks_hit: int, flags_applied: int, plan_path: str,
                                 build_report_path: str) -> str:
        """v0.5's call shape: nine arguments, no outcome (a run v0.5 started that reached
        its close)."""
        return await self.summaries.write(WorkflowSummary(
            workflow_id=workflow_id, build_name=build_name,
            started=datetime.fromisoformat(started_at),
            completed=datetime.fromisoformat(completed_at),
            phases_completed=phases_completed, blocks_hit=blocks_hit,
            flags_applied=flags_applied, outcome=finished_outcome(blocks_hit),
            plan_path=plan_path, build_report_path=build_report_path or None))


def legacy_activities(deps: Deps) -> list[Callable[..., Any]]:
    """Every activity v0.5's runs call by name (the main worker registers them)."""
    legacy = V05Activities(deps)
    return [legacy.prefab_scaffolding, legacy.implement_build, legacy.request_security_audit,
            legacy.apply_flag_fixes, legacy.close_build, legacy.execute_build_phase,
            legacy.wait_for_block_resolution, legacy.summarize_workflow]
