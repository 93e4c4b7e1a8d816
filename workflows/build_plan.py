"""BuildPlanWorkflow: run a plan's phases in order, each handed to its agent."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.summary import SummaryActivities
    from contract import PLAN
    from models import (
        BuildPhaseInput,
        BuildPlanInput,
        BuildPlanResult,
        PhaseOutcome,
        PlanSummary,
    )
    from stages import PHASE
    from workflows.base import BuildWorkflowBase, StageCall
    from workflows.legacy import V05Plan, started_by_v05
    from workflows.run_input import checked_input, note_ignored_keys


# Invalid input fails the run at once (not a workflow task retried forever).
@workflow.defn(name=PLAN, failure_exception_types=[ValidationError])
class BuildPlanWorkflow(BuildWorkflowBase):
    """Phases run sequentially; a failed phase fails the plan."""

    @workflow.run
    async def run(self, raw: dict[str, Any]) -> BuildPlanResult:
        """RAW is a BuildPlanInput as JSON, validated here (see `checked_input`)."""
        try:
            plan = checked_input(BuildPlanInput, raw)
        except ApplicationError:
            self.status.stage = "invalid input"
            raise
        if started_by_v05():
            return await V05Plan(self).run(plan)
        note_ignored_keys(plan)
        settings = await self.load_settings()
        started, outcomes = workflow.now(), [
            PhaseOutcome(number=phase.number, agent=phase.agent_type, outcome="not run")
            for phase in plan.phases]
        try:
            for phase, outcome in zip(plan.phases, outcomes, strict=True):
                outcome.outcome = "failed"
                result = await self.run_agent_stage(StageCall(
                    PHASE, phase.agent_type, plan.plan_name, self._fields(plan, phase),
                    settings.limit(PHASE), phase=phase.number, attempts=2,
                    refs=tuple(phase.context_refs)))
                outcome.outcome, outcome.output = "completed", result.output[:2000] or None
            await self.settled()
        except asyncio.CancelledError:
            self._cancelled(outcomes)
            await self._ended(plan, started, outcomes, "cancelled",
                              "the plan was cancelled")
            raise
        except (ActivityError, ApplicationError) as err:
            await self._ended(plan, started, outcomes, "failed", err.message)
            raise
        await self._ended(plan, started, outcomes, "success", None)
        return BuildPlanResult(phases_run=len(plan.phases))

    @staticmethod
    def _fields(plan: BuildPlanInput, phase: Any) -> dict[str, Any]:
        """A phase's payload fields, as the upstream contract names them."""
        return BuildPhaseInput(
            plan_name=plan.plan_name, phase_number=phase.number,
            agent_type=phase.agent_type, description=phase.description,
            context_refs=phase.context_refs, workflow_id=workflow.info().workflow_id,
        ).model_dump(exclude={"agent_type"})

    @staticmethod
    def _cancelled(outcomes: list[PhaseOutcome]) -> None:
        for outcome in outcomes:
            if outcome.outcome == "failed":
                outcome.outcome = "cancelled"

    async def _ended(self, plan: BuildPlanInput, started: Any, outcomes: list[PhaseOutcome],
                     outcome: str, why: str | None) -> None:
        """How the plan ended, shown and written as its summary."""
        path = None
        record = PlanSummary(workflow_id=workflow.info().workflow_id, plan_name=plan.plan_name,
                             started=started, completed=workflow.now(), outcome=outcome,
                             phases=outcomes, ending=why[:2000] if why else None)
        with contextlib.suppress(ActivityError):  # the plan's own ending comes first
            path = await workflow.execute_activity_method(
                SummaryActivities.write_plan_summary, record,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"summary · plan outcome {outcome}")
        self.finish(outcome, path)
