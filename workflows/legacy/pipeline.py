"""BuildPipelineWorkflow as v0.5 ran it, for pipelines v0.5 started.

The command sequence, arguments, timeouts and retries below are the facts of v0.5's calls
(tests/histories/v0.5/). Where v0.5 had no guarantee, ours takes over without changing
anything v0.5 would have recorded: a block wait that v0.5's activity gave up on (its worker
stopped) becomes our durable wait, and operator signals and updates count while it waits.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.blocks import BlockActivities
    from activities.legacy import V05Activities
    from activities.triage_stage import TriageStage
    from models import BlockDecision, BuildPipelineInput, BuildPipelineResult, TriageOutput
    from stages import AUDIT, CLOSE, FIXES, IMPLEMENT, PREFAB
    from workflows.decisions import DecisionGate
    from workflows.legacy.stage import StageHost, run_v05_stage

BLOCK_WAIT = timedelta(days=7)


class PipelineHost(StageHost, Protocol):
    """What a v0.5 pipeline run uses of BuildPipelineWorkflow: its decision gate, its durable
    wait, and its summary and ending (our guarantees where a v0.5 run can take them)."""

    gate: DecisionGate

    async def await_decision(self, task_id: str, timeout: float) -> str: ...

    async def summarize(self, params: BuildPipelineInput, started: datetime,
                        phases: list[str], triage: TriageOutput, outcome: str,
                        report: str | None) -> str: ...

    def ending_error(self, build: str, outcome: str) -> ApplicationError: ...


class V05Pipeline:
    """v0.5's nine stages with v0.5's activities; decisions through our gate."""

    def __init__(self, host: PipelineHost) -> None:
        self.host = host

    async def run(self, params: BuildPipelineInput) -> BuildPipelineResult:
        host, build, agent = self.host, params.build_name, params.target_agent
        started = workflow.now()
        await run_v05_stage(host, "prefab", PREFAB, PREFAB.agent or "",
                            [build, params.plan_path], 2)
        await run_v05_stage(host, "implement", IMPLEMENT, agent, [build, params.task_id, agent], 4)
        await run_v05_stage(host, "audit", AUDIT, AUDIT.agent or "",
                            [build, params.plan_path], 4)
        host.enter("triage", "triage-output.yml from the security agent")
        triage: TriageOutput = await workflow.execute_activity_method(
            TriageStage.process_triage_output, build,
            start_to_close_timeout=timedelta(hours=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(minutes=2),
                                     maximum_interval=timedelta(minutes=15),
                                     maximum_attempts=5),
            summary=f"triage · read triage-output.yml for {build}")
        host.status.blocks, host.status.flags = len(triage.blocks), len(triage.flags)
        host.done("triage")
        phases = ["prefab", "implement", "audit", "triage"]
        if triage.flags:
            await run_v05_stage(host, "fixes", FIXES, agent, [build, triage.flags, agent], 2)
            phases.append("fixes")
        if triage.blocks:
            verdict = await self._blocks(params, triage.blocks)
            if verdict != "approved":
                await host.summarize(params, started, phases, triage, verdict, None)
                raise host.ending_error(build, verdict)
        close = await run_v05_stage(host, "close", CLOSE, agent, [build, agent], 2)
        phases.append("close")
        completed = workflow.now()
        host.enter("summary", None)
        path = await workflow.execute_activity_method(
            V05Activities.summarize_workflow,
            args=[workflow.info().workflow_id, build, started.isoformat(),
                  completed.isoformat(), phases, len(triage.blocks), len(triage.flags),
                  params.plan_path, close.output or ""],
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="summary · run started by v0.5")
        host.done("summary")
        host.enter("complete", None)
        return BuildPipelineResult(workflow_id=workflow.info().workflow_id, summary_path=path)

    async def _blocks(self, params: BuildPipelineInput, blocks: list[str]) -> str:
        """v0.5's notify and file-polling wait; its failure means 'still waiting', not 'no'."""
        host, gate = self.host, self.host.gate
        build, task_id = params.build_name, params.task_id
        host.enter("notify", f"notifications for {len(blocks)} block(s)")
        await workflow.execute_activity_method(
            BlockActivities.notify_blocks, args=[build, task_id, blocks],
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"notify · {len(blocks)} block(s) · originating task {task_id}")
        host.done("notify")
        since = workflow.now()
        host.status.deadline = since + BLOCK_WAIT
        host.enter("wait", f"operator decision on {len(blocks)} block(s): approve or reject "
                           f"(signal/update), or set task {task_id} to approved")
        gate.parked = True  # signals and updates count while v0.5's activity polls the file
        handle = workflow.start_activity_method(
            V05Activities.wait_for_block_resolution, args=[build, task_id],
            schedule_to_close_timeout=BLOCK_WAIT, heartbeat_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=f"wait · originating task {task_id} (run started by v0.5)")
        await workflow.wait_condition(lambda: handle.done() or gate.decision is not None)
        if gate.decision is not None:
            handle.cancel()
            with contextlib.suppress(ActivityError, CancelledError):
                await handle
        else:
            try:
                await handle
                gate.decision = ("approved", BlockDecision(by="task-file"))
            except ActivityError as err:
                workflow.logger.warning("v05_block_wait_ended", extra={
                    "error": str(err.cause or err)[:200]})
                left = (BLOCK_WAIT - (workflow.now() - since)).total_seconds()
                return self._finish_wait(await host.await_decision(task_id, left))
        gate.parked = False
        return self._finish_wait(gate.decision[0])

    def _finish_wait(self, verdict: str) -> str:
        self.host.status.decision = verdict
        if verdict == "approved":
            self.host.done("wait")
        return verdict
