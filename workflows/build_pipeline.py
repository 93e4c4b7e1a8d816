"""BuildPipelineWorkflow: the nine-stage build, with a durable, operator-steerable block wait."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.blocks import BlockActivities
    from activities.summary import SummaryActivities
    from activities.triage_stage import TriageStage
    from connection.search_attributes import BUILD_NAME, TARGET_AGENT
    from contract import PIPELINE, Handler, Marker, Memo
    from models import (
        BlockDecision,
        BuildPhaseResult,
        BuildPipelineInput,
        BuildPipelineResult,
        StageSettings,
        TriageOutput,
        WorkflowSummary,
        finished_outcome,
        plan_path_problem,
    )
    from stages import AUDIT, AUDIT_AGENT, CLOSE, FIXES, IMPLEMENT, PREFAB, Stage
    from workflows.decisions import DecisionGate
    from workflows.dispatching import DispatchingWorkflow, StageCall
    from workflows.legacy import V05Pipeline, started_by_v05
    from workflows.run_input import checked_input, invalid_input, note_ignored_keys
    from workflows.versions import follows

SHORT = RetryPolicy(maximum_attempts=3)


def triage_refusal(error: ActivityError) -> str | None:
    """The one-line reason when the triage activity refused the file (else None)."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == "TriageFormatError":
        return cause.message
    return None


# Worker-side activities finish in well under this or heartbeat (notify_blocks, per block): a
# worker killed mid-activity then costs a retry after LIVENESS, not the whole start-to-close.
LIVENESS = timedelta(seconds=30)


# Invalid input fails the run at once (not a workflow task retried forever).
@workflow.defn(name=PIPELINE, failure_exception_types=[ValidationError])
class BuildPipelineWorkflow(DispatchingWorkflow):
    """prefab → implement → audit → triage → [fixes] → [notify, wait] → close → summary."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = DecisionGate()

    @workflow.run
    async def run(self, raw: dict[str, Any]) -> BuildPipelineResult:
        """RAW is a BuildPipelineInput as JSON, validated here (see `checked_input`)."""
        params = self._input(raw)
        if started_by_v05():
            return await V05Pipeline(self).run(params)
        problem = plan_path_problem(params.plan_path)
        if problem and follows(Marker.ABSOLUTE_PLAN_PATH):
            self.status.stage = "invalid input"
            raise invalid_input(problem)
        self.choose_handoff()
        note_ignored_keys(params)
        settings = await self.load_settings()
        if settings.index_builds:
            workflow.upsert_search_attributes([BUILD_NAME.value_set(params.build_name),
                                               TARGET_AGENT.value_set(params.target_agent)])
        origin = params.task_id
        try:
            result = await self._stages(params, settings)
        except asyncio.CancelledError:
            self.settle(origin, "cancelled", "the build pipeline was cancelled")
            await self.settled()
            raise
        except (ActivityError, ApplicationError) as err:
            self.settle(origin, "failed", f"the build pipeline failed: {err.message}"[:2000])
            await self.settled()
            raise
        self.settle(origin, "completed", "the build pipeline completed; summary attached",
                    result.summary_path)
        await self.settled()
        self.enter("complete", None)
        return result

    def _input(self, raw: dict[str, Any]) -> BuildPipelineInput:
        try:
            return checked_input(BuildPipelineInput, raw)
        except ApplicationError:
            self.status.stage = "invalid input"
            raise

    async def _stages(self, params: BuildPipelineInput,
                      settings: StageSettings) -> BuildPipelineResult:
        started = workflow.now()
        build, agent, origin = params.build_name, params.target_agent, params.task_id
        refs = (params.plan_path,)

        async def stage(kind: Stage, **fields: Any) -> BuildPhaseResult:
            return await self.run_agent_stage(StageCall(
                kind, kind.agent or agent, build, {"build_name": build, **fields},
                settings.limit(kind), origin=origin, refs=refs))

        await stage(PREFAB, plan_path=params.plan_path)
        await stage(IMPLEMENT, originating_task_id=origin)
        await stage(AUDIT, plan_path=params.plan_path)
        triage, refused = await self._read_triage(build, settings)
        phases = ["prefab", "implement", "audit", "triage"]
        if triage.flags:
            await stage(FIXES, flags=triage.flags)
            phases.append("fixes")
        if triage.blocks:
            outcome = await self._resolve_blocks(params, triage.blocks, settings)
            if outcome != "approved":
                await self.summarize(params, started, phases, triage, outcome, None)
                raise self.ending_error(build, outcome)
            decided = self.gate.decided or BlockDecision(by="task-file")
            why = f": {decided.reason}" if decided.reason else ""
            self.settle(origin, "in-progress", f"blocks approved by {decided.by}{why}; "
                                               f"the build goes on")
        if refused:  # approved over an unreadable audit: read it again (the operator may
            fixed = await self._reread_triage(build)  # have corrected it), then its flags
            if fixed is not None:
                triage = TriageOutput(blocks=triage.blocks + fixed.blocks, flags=fixed.flags,
                                      info=fixed.info)
                self.status.blocks, self.status.flags = len(triage.blocks), len(fixed.flags)
                if fixed.flags:
                    await stage(FIXES, flags=fixed.flags)
                    phases.append("fixes")
        close = await stage(CLOSE)
        phases.append("close")
        outcome = finished_outcome(len(triage.blocks))
        path = await self.summarize(params, started, phases, triage, outcome,
                                    close.output or None)
        return BuildPipelineResult(workflow_id=workflow.info().workflow_id, summary_path=path)

    async def _read_triage(self, build: str,
                           settings: StageSettings) -> tuple[TriageOutput, bool]:
        """The audit's findings; a file we cannot read is never a clean audit: it becomes
        one block for the operator ("triage file unreadable: ..."), so nothing is lost."""
        try:
            return await self._triage(build, settings), False
        except ActivityError as err:
            reason = triage_refusal(err)
            if reason is None or not follows(Marker.TRIAGE_REFUSAL_PARKS):
                raise
        workflow.logger.warning("triage_refused", extra={"build": build, "reason": reason})
        self.status.blocks, self.status.flags = 1, 0
        self.done("triage")
        return TriageOutput(blocks=[f"triage file unreadable: {reason}"]), True

    async def _reread_triage(self, build: str) -> TriageOutput | None:
        """One more read after the operator approved an unreadable audit (None: still not)."""
        try:
            return await workflow.execute_activity_method(
                TriageStage.process_triage_output, build, task_queue=self.host_queue(AUDIT_AGENT),
                start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=LIVENESS,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary=f"triage · read triage-output.yml for {build} again")
        except ActivityError as err:
            workflow.logger.warning("triage_still_unreadable",
                                    extra={"build": build, "reason": triage_refusal(err)})
            return None

    async def _triage(self, build: str, settings: StageSettings) -> TriageOutput:
        queue = self.host_queue(AUDIT_AGENT)  # read where the security agent wrote it
        self.enter("triage", "triage-output.yml from the security agent", queue)
        triage = await workflow.execute_activity_method(
            TriageStage.process_triage_output, build, task_queue=queue,
            start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=LIVENESS,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=settings.triage_retry_initial),
                maximum_interval=timedelta(seconds=settings.triage_retry_max),
                maximum_attempts=settings.triage_max_attempts,
                non_retryable_error_types=["TriageFormatError"]),
            summary=f"triage · read triage-output.yml for {build}")
        self.status.blocks, self.status.flags = len(triage.blocks), len(triage.flags)
        self.done("triage")
        return triage

    async def _resolve_blocks(self, params: BuildPipelineInput, blocks: list[str],
                              settings: StageSettings) -> str:
        """Notify, then wait durably for approve/reject (signal, update or task file)."""
        build, task_id = params.build_name, params.task_id
        self.enter("notify", f"notifications for {len(blocks)} block(s)")
        await workflow.execute_activity_method(
            BlockActivities.notify_blocks, args=[build, task_id, blocks],
            start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=LIVENESS,
            retry_policy=SHORT,
            summary=f"notify · {len(blocks)} block(s) · originating task {task_id}")
        self.done("notify")
        deadline = workflow.now() + timedelta(seconds=settings.block_wait_timeout)
        self.status.deadline = deadline
        self.enter("wait", f"operator decision on {len(blocks)} block(s): approve or reject "
                           f"(signal/update), or set task {task_id} to approved; "
                           f"deadline {deadline:%Y-%m-%d %H:%M} UTC")
        verdict = await self.await_decision(task_id, settings.block_wait_timeout)
        if verdict == "approved":
            self.done("wait")
        return verdict

    async def await_decision(self, task_id: str, timeout: float) -> str:
        """Park (no activity held) until a signal, update or the task file decides, or TIMEOUT.

        The sweeper reads the memo to look at the originating task file for this run.
        """
        self.gate.parked = True
        workflow.upsert_memo({Memo.AWAIT: task_id})
        check = await workflow.execute_activity_method(
            BlockActivities.check_block_status, task_id,
            start_to_close_timeout=timedelta(minutes=1), heartbeat_timeout=LIVENESS,
            retry_policy=SHORT,
            summary=f"wait · check originating task {task_id}")
        self.gate.take_file_status(check)
        try:
            await workflow.wait_condition(lambda: self.gate.decision is not None,
                                          timeout=timedelta(seconds=max(timeout, 0.001)))
            verdict = self.gate.verdict or "timed_out"
        except TimeoutError:
            verdict = "timed_out"
        self.gate.parked = False
        workflow.upsert_memo({Memo.AWAIT: None})
        self.status.decision, self.status.deadline = verdict, None
        return verdict

    @workflow.signal(name=Handler.APPROVE)
    def approve(self, decision: BlockDecision) -> None:
        self.gate.decide("approved", decision)

    @workflow.signal(name=Handler.REJECT)
    def reject(self, decision: BlockDecision) -> None:
        self.gate.decide("rejected", decision)

    @workflow.update(name=Handler.APPROVE_BLOCKS)
    def approve_blocks(self, decision: BlockDecision) -> str:
        self.gate.decide("approved", decision)
        return "approved"

    @approve_blocks.validator
    def _validate_approve(self, decision: BlockDecision) -> None:
        self.gate.refuse_unless_due(decision)

    @workflow.update(name=Handler.REJECT_BLOCKS)
    def reject_blocks(self, decision: BlockDecision) -> str:
        self.gate.decide("rejected", decision)
        return "rejected"

    @reject_blocks.validator
    def _validate_reject(self, decision: BlockDecision) -> None:
        self.gate.refuse_unless_due(decision)

    async def summarize(self, params: BuildPipelineInput, started: datetime, phases: list[str],
                         triage: TriageOutput, outcome: str, report: str | None) -> str:
        self.enter("summary", None)
        decided = self.gate.decided
        record = WorkflowSummary(
            workflow_id=workflow.info().workflow_id, build_name=params.build_name,
            started=started, completed=workflow.now(), phases_completed=phases,
            blocks_hit=len(triage.blocks), flags_applied=len(triage.flags),
            outcome=outcome, plan_path=params.plan_path, build_report_path=report,
            decided_by=decided.by if decided else None,
            reason=(decided.reason or None) if decided else None)
        path = await workflow.execute_activity_method(
            SummaryActivities.write_summary, record,
            start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=LIVENESS,
            retry_policy=SHORT,
            summary=f"summary · outcome {record.outcome}")
        self.done("summary")
        return path

    def ending_error(self, build: str, outcome: str) -> ApplicationError:
        who = self.gate.decided
        if outcome == "rejected" and who:
            why = f": {who.reason}" if who.reason else ""
            return ApplicationError(f"Build {build} rejected by {who.by}{why}",
                                    type="BuildRejected", non_retryable=True)
        return ApplicationError(f"Build {build}: no block decision before the deadline",
                                type="BlockWaitTimedOut", non_retryable=True)

