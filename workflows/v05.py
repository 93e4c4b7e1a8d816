"""Runs v0.5 started: continued with v0.5's exact commands so their histories keep replaying.

The command sequence, arguments, timeouts and retries below are the facts of v0.5's calls
(tests/histories/v0.5/). Where v0.5 had no guarantee, ours takes over without changing
anything v0.5 would have recorded: a block wait that v0.5's activity gave up on (its worker
stopped) becomes our durable wait, and operator signals and updates count while it waits.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.agent_stages import AgentStages
    from activities.blocks import BlockActivities
    from activities.summary import SummaryActivities
    from activities.triage_stage import TriageStage
    from models import (
        BlockDecision,
        BuildPhaseInput,
        BuildPipelineInput,
        BuildPipelineResult,
        BuildPlanInput,
        BuildPlanResult,
        TriageOutput,
    )
    from workflows.common import PHASE_FAILED, DispatchingWorkflow

if TYPE_CHECKING:
    from workflows.build_pipeline import BuildPipelineWorkflow

HOUR = 3600.0
BLOCK_WAIT = timedelta(days=7)


class V05Pipeline:
    """BuildPipelineWorkflow as v0.5 ran it, for runs without our version marker."""

    def __init__(self, wf: BuildPipelineWorkflow) -> None:
        self.wf = wf

    async def run(self, params: BuildPipelineInput) -> BuildPipelineResult:
        wf, build, agent = self.wf, params.build_name, params.target_agent
        started = workflow.now()
        await wf.run_v05_stage("prefab", "prefab_scaffolding", "claudebox",
                               AgentStages.prefab_scaffolding, [build, params.plan_path],
                               2 * HOUR)
        await wf.run_v05_stage("implement", "implement_build", agent,
                               AgentStages.implement_build, [build, params.task_id, agent],
                               4 * HOUR)
        await wf.run_v05_stage("audit", "request_security_audit", "security-agent",
                               AgentStages.request_security_audit, [build, params.plan_path],
                               4 * HOUR)
        wf.enter("triage", "triage-output.yml from the security agent")
        triage: TriageOutput = await workflow.execute_activity_method(
            TriageStage.process_triage_output, build,
            start_to_close_timeout=timedelta(hours=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(minutes=2),
                                     maximum_interval=timedelta(minutes=15),
                                     maximum_attempts=5),
            summary=f"triage · read triage-output.yml for {build}")
        wf._progress.blocks, wf._progress.flags = len(triage.blocks), len(triage.flags)
        wf.done("triage")
        phases = ["prefab", "implement", "audit", "triage"]
        if triage.flags:
            await wf.run_v05_stage("fixes", "apply_flag_fixes", agent,
                                   AgentStages.apply_flag_fixes, [build, triage.flags, agent],
                                   2 * HOUR)
            phases.append("fixes")
        if triage.blocks:
            verdict = await self._blocks(params, triage.blocks)
            if verdict != "approved":
                await wf.summarize(params, started, phases, triage, verdict, None)
                raise wf.ending_error(build, verdict)
        close = await wf.run_v05_stage("close", "close_build", agent, AgentStages.close_build,
                                       [build, agent], 2 * HOUR)
        phases.append("close")
        completed = workflow.now()
        wf.enter("summary", None)
        path: str = await workflow.execute_activity_method(
            SummaryActivities.summarize_workflow,
            args=[workflow.info().workflow_id, build, started.isoformat(),
                  completed.isoformat(), phases, len(triage.blocks), len(triage.flags),
                  params.plan_path, close.output or ""],
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="summary · run started by v0.5")
        wf.done("summary")
        wf.enter("complete", None)
        return BuildPipelineResult(workflow_id=workflow.info().workflow_id, summary_path=path)

    async def _blocks(self, params: BuildPipelineInput, blocks: list[str]) -> str:
        """v0.5's notify and file-polling wait; its failure means 'still waiting', not 'no'."""
        wf, build, task_id = self.wf, params.build_name, params.task_id
        wf.enter("notify", f"notifications for {len(blocks)} block(s)")
        await workflow.execute_activity_method(
            BlockActivities.notify_blocks, args=[build, task_id, blocks],
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"notify · {len(blocks)} block(s) · originating task {task_id}")
        wf.done("notify")
        since = workflow.now()
        wf._progress.deadline = since + BLOCK_WAIT
        wf.enter("wait", f"operator decision on {len(blocks)} block(s): approve or reject "
                         f"(signal/update), or set task {task_id} to approved")
        wf._parked = True  # signals and updates count while v0.5's activity polls the file
        handle = workflow.start_activity_method(
            BlockActivities.wait_for_block_resolution, args=[build, task_id],
            schedule_to_close_timeout=BLOCK_WAIT, heartbeat_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=f"wait · originating task {task_id} (run started by v0.5)")
        await workflow.wait_condition(lambda: handle.done() or wf._decision is not None)
        if wf._decision is not None:
            handle.cancel()
            with contextlib.suppress(ActivityError, CancelledError):
                await handle
        else:
            try:
                await handle
                wf._decision = ("approved", BlockDecision(by="task-file"))
            except ActivityError as err:
                workflow.logger.warning("v05_block_wait_ended", extra={
                    "error": str(err.cause or err)[:200]})
                left = (BLOCK_WAIT - (workflow.now() - since)).total_seconds()
                return self._finish_wait(await wf.await_decision(task_id, left))
        wf._parked = False
        return self._finish_wait(wf._decision[0])

    def _finish_wait(self, verdict: str) -> str:
        self.wf._progress.decision = verdict
        if verdict == "approved":
            self.wf.done("wait")
        return verdict


class V05Plan:
    """BuildPlanWorkflow as v0.5 ran it."""

    def __init__(self, wf: DispatchingWorkflow) -> None:
        self.wf = wf

    async def run(self, plan: BuildPlanInput) -> BuildPlanResult:
        workflow_id = workflow.info().workflow_id
        for phase in plan.phases:
            phase_input = BuildPhaseInput(
                plan_name=plan.plan_name, phase_number=phase.number,
                agent_type=phase.agent_type, description=phase.description,
                context_refs=phase.context_refs, workflow_id=workflow_id)
            result = await self.wf.run_v05_stage(
                f"phase {phase.number}", f"execute_build_phase/{phase.number}",
                phase.agent_type, AgentStages.execute_build_phase, [phase_input], 24 * HOUR,
                attempts=2)
            if result.status != "success":
                raise ApplicationError(f"Phase {phase.number} failed: {result.output}",
                                       type=PHASE_FAILED, non_retryable=True)
        self.wf.enter("complete", None)
        return BuildPlanResult(phases_run=len(plan.phases))
