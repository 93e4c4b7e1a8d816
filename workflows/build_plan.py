"""BuildPlanWorkflow: run a plan's phases in order, each handed to its agent."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contract import PLAN
    from models import BuildPhaseInput, BuildPlanInput, BuildPlanResult
    from stages import PHASE
    from workflows.dispatching import DispatchingWorkflow, StageCall
    from workflows.legacy import V05Plan, started_by_v05
    from workflows.run_input import checked_input, note_ignored_keys


# Invalid input fails the run at once (not a workflow task retried forever).
@workflow.defn(name=PLAN, failure_exception_types=[ValidationError])
class BuildPlanWorkflow(DispatchingWorkflow):
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
        self.choose_handoff()
        note_ignored_keys(plan)
        settings = await self.load_settings()
        workflow_id = workflow.info().workflow_id
        for phase in plan.phases:
            fields = BuildPhaseInput(
                plan_name=plan.plan_name, phase_number=phase.number,
                agent_type=phase.agent_type, description=phase.description,
                context_refs=phase.context_refs, workflow_id=workflow_id,
            ).model_dump(exclude={"agent_type"})
            await self.run_agent_stage(StageCall(
                PHASE, phase.agent_type, plan.plan_name, fields, settings.limit(PHASE),
                phase=phase.number, attempts=2, refs=tuple(phase.context_refs)))
        await self.settled()
        self.enter("complete", None)
        return BuildPlanResult(phases_run=len(plan.phases))
