"""Runs v0.5 started: continued with v0.5's exact commands so their histories keep replaying.

The command sequence, arguments, timeouts and retries below are the facts of v0.5's calls
(tests/histories/v0.5/). Where v0.5 had no guarantee, ours takes over without changing
anything v0.5 would have recorded: a block wait that v0.5's activity gave up on (its worker
stopped) becomes our durable wait, and operator signals and updates count while it waits.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.blocks import BlockActivities
    from activities.summary import SummaryActivities
    from activities.triage_stage import TriageStage
    from models import (
        AUDIT_AGENT,
        PREFAB_AGENT,
        BlockDecision,
        BuildPhaseInput,
        BuildPipelineInput,
        BuildPipelineResult,
        BuildPlanInput,
        BuildPlanResult,
        TriageOutput,
    )
    from workflows.common import PHASE_FAILED, DispatchingWorkflow

HOUR = 3600.0
BLOCK_WAIT = timedelta(days=7)


class V05PipelinePath(DispatchingWorkflow):
    """BuildPipelineWorkflow as v0.5 ran it, for runs without our version marker.

    The pipeline workflow extends this; `summarize`, `ending_error` and `await_decision`
    are its own (our guarantees where a v0.5 run can take them).
    """

    _decision: tuple[str, BlockDecision] | None
    _parked: bool

    async def run_v05(self, params: BuildPipelineInput) -> BuildPipelineResult:
        build, agent = params.build_name, params.target_agent
        started = workflow.now()
        await self.run_v05_stage("prefab", "build_prefab", PREFAB_AGENT,
                               [build, params.plan_path],
                               2 * HOUR)
        await self.run_v05_stage("implement", "build_plan", agent,
                               [build, params.task_id, agent],
                               4 * HOUR)
        await self.run_v05_stage("audit", "security_audit", AUDIT_AGENT,
                               [build, params.plan_path],
                               4 * HOUR)
        self.enter("triage", "triage-output.yml from the security agent")
        triage: TriageOutput = await workflow.execute_activity_method(
            TriageStage.process_triage_output, build,
            start_to_close_timeout=timedelta(hours=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(minutes=2),
                                     maximum_interval=timedelta(minutes=15),
                                     maximum_attempts=5),
            summary=f"triage · read triage-output.yml for {build}")
        self._progress.blocks, self._progress.flags = len(triage.blocks), len(triage.flags)
        self.done("triage")
        phases = ["prefab", "implement", "audit", "triage"]
        if triage.flags:
            await self.run_v05_stage("fixes", "security_fix", agent,
                                   [build, triage.flags, agent],
                                   2 * HOUR)
            phases.append("fixes")
        if triage.blocks:
            verdict = await self._v05_blocks(params, triage.blocks)
            if verdict != "approved":
                await self.summarize(params, started, phases, triage, verdict, None)
                raise self.ending_error(build, verdict)
        close = await self.run_v05_stage("close", "build_closeout", agent,
                                         [build, agent], 2 * HOUR)
        phases.append("close")
        completed = workflow.now()
        self.enter("summary", None)
        path: str = await workflow.execute_activity_method(
            SummaryActivities.summarize_workflow,
            args=[workflow.info().workflow_id, build, started.isoformat(),
                  completed.isoformat(), phases, len(triage.blocks), len(triage.flags),
                  params.plan_path, close.output or ""],
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="summary · run started by v0.5")
        self.done("summary")
        self.enter("complete", None)
        return BuildPipelineResult(workflow_id=workflow.info().workflow_id, summary_path=path)

    async def _v05_blocks(self, params: BuildPipelineInput, blocks: list[str]) -> str:
        """v0.5's notify and file-polling wait; its failure means 'still waiting', not 'no'."""
        build, task_id = params.build_name, params.task_id
        self.enter("notify", f"notifications for {len(blocks)} block(s)")
        await workflow.execute_activity_method(
            BlockActivities.notify_blocks, args=[build, task_id, blocks],
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"notify · {len(blocks)} block(s) · originating task {task_id}")
        self.done("notify")
        since = workflow.now()
        self._progress.deadline = since + BLOCK_WAIT
        self.enter("wait", f"operator decision on {len(blocks)} block(s): approve or reject "
                         f"(signal/update), or set task {task_id} to approved")
        self._parked = True  # signals and updates count while v0.5's activity polls the file
        handle = workflow.start_activity_method(
            BlockActivities.wait_for_block_resolution, args=[build, task_id],
            schedule_to_close_timeout=BLOCK_WAIT, heartbeat_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=f"wait · originating task {task_id} (run started by v0.5)")
        await workflow.wait_condition(lambda: handle.done() or self._decision is not None)
        if self._decision is not None:
            handle.cancel()
            with contextlib.suppress(ActivityError, CancelledError):
                await handle
        else:
            try:
                await handle
                self._decision = ("approved", BlockDecision(by="task-file"))
            except ActivityError as err:
                workflow.logger.warning("v05_block_wait_ended", extra={
                    "error": str(err.cause or err)[:200]})
                left = (BLOCK_WAIT - (workflow.now() - since)).total_seconds()
                return self._finish_wait(await self.await_decision(task_id, left))
        self._parked = False
        return self._finish_wait(self._decision[0])

    def _finish_wait(self, verdict: str) -> str:
        self._progress.decision = verdict
        if verdict == "approved":
            self.done("wait")
        return verdict


class V05PlanPath(DispatchingWorkflow):
    """BuildPlanWorkflow as v0.5 ran it (the plan workflow extends this)."""

    async def run_v05(self, plan: BuildPlanInput) -> BuildPlanResult:
        workflow_id = workflow.info().workflow_id
        for phase in plan.phases:
            phase_input = BuildPhaseInput(
                plan_name=plan.plan_name, phase_number=phase.number,
                agent_type=phase.agent_type, description=phase.description,
                context_refs=phase.context_refs, workflow_id=workflow_id)
            result = await self.run_v05_stage(
                f"phase {phase.number}", "build_phase", phase.agent_type,
                [phase_input], 24 * HOUR, attempts=2,
                key_suffix=f"/{phase.number}")
            if result.status != "success":
                raise ApplicationError(f"Phase {phase.number} failed: {result.output}",
                                       type=PHASE_FAILED, non_retryable=True)
        self.enter("complete", None)
        return BuildPlanResult(phases_run=len(plan.phases))
