"""BuildPlanWorkflow as v0.5 ran it, for plans v0.5 started."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contract import PHASE_FAILED
    from models import BuildPhaseInput, BuildPlanInput, BuildPlanResult
    from stages import PHASE
    from workflows.legacy.stage import StageHost, run_v05_stage


class V05Plan:
    """v0.5's phases, one execute_build_phase each (24 h, two attempts)."""

    def __init__(self, host: StageHost) -> None:
        self.host = host

    async def run(self, plan: BuildPlanInput) -> BuildPlanResult:
        workflow_id = workflow.info().workflow_id
        for phase in plan.phases:
            phase_input = BuildPhaseInput(
                plan_name=plan.plan_name, phase_number=phase.number,
                agent_type=phase.agent_type, description=phase.description,
                context_refs=phase.context_refs, workflow_id=workflow_id)
            result = await run_v05_stage(self.host, f"phase {phase.number}", PHASE,
                                         phase.agent_type, [phase_input], 24, attempts=2,
                                         phase=phase.number)
            if result.status != "success":
                raise ApplicationError(f"Phase {phase.number} failed: {result.output}",
                                       type=PHASE_FAILED, non_retryable=True)
        self.host.enter("complete", None)
        return BuildPlanResult(phases_run=len(plan.phases))
