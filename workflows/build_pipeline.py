"""BuildPipelineWorkflow: the nine-stage build, with a durable, operator-steerable block wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
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
    from contract import BUILD_REJECTED, PIPELINE, TRIAGE_FORMAT_ERROR, Handler, Memo
    from findings import shown
    from models import (
        BlockDecision,
        BlockNotice,
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
    from workflows.base import BuildWorkflowBase, StageCall
    from workflows.decisions import DecisionGate
    from workflows.legacy import V05Pipeline, started_by_v05
    from workflows.run_input import checked_input, invalid_input, note_ignored_keys

SHORT = RetryPolicy(maximum_attempts=3)
NOTICE_TRIES = 5  # a failed notification is tried again after 1, 2, 4, 8 check intervals
REPORT_CHARS = 4000  # of the implementing agent's report, handed to the auditor


def triage_refusal(error: ActivityError) -> tuple[str, str | None] | None:
    """The one-line reason when the triage activity refused the file, and the file's path
    when the activity names it (else None)."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == TRIAGE_FORMAT_ERROR:
        path = cause.details[0] if cause.details and isinstance(cause.details[0], str) else None
        return cause.message, path
    return None


# Worker-side activities finish in well under this or heartbeat (notify_findings): a
# worker killed mid-activity then costs a retry after LIVENESS, not the whole start-to-close.
LIVENESS = timedelta(seconds=30)


# Invalid input fails the run at once (not a workflow task retried forever).
@workflow.defn(name=PIPELINE, failure_exception_types=[ValidationError])
class BuildPipelineWorkflow(BuildWorkflowBase):
    """prefab → implement → audit → triage → [fixes] → [notify, wait] → close → summary."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = DecisionGate()
        self._found: TriageOutput | None = None
        self._notices: set[asyncio.Task[None]] = set()  # running: a finished one is let go
        self._notified = 0  # notifications started
        self._tried = 0  # notifications whose first try is over
        self._started: datetime | None = None
        self._summarized = False

    @workflow.run
    async def run(self, raw: dict[str, Any]) -> BuildPipelineResult:
        """RAW is a BuildPipelineInput as JSON, validated here (see `checked_input`)."""
        params = self._input(raw)
        if started_by_v05():
            return await V05Pipeline(self).run(params)
        problem = plan_path_problem(params.plan_path)
        if problem:
            self.status.stage = "invalid input"
            raise invalid_input(problem)
        note_ignored_keys(params)
        settings = await self.load_settings()
        if settings.index_builds:
            workflow.upsert_search_attributes([BUILD_NAME.value_set(params.build_name),
                                               TARGET_AGENT.value_set(params.target_agent)])
        origin = params.task_id
        self._started = workflow.now()
        try:
            result = await self._stages(params, settings)
        except asyncio.CancelledError:
            self.settle(origin, "cancelled", "the build pipeline was cancelled")
            await self.settled()
            await self._summarize_ending(params, "cancelled", "the build pipeline was cancelled")
            raise
        except (ActivityError, ApplicationError) as err:
            self.settle(origin, "failed", f"the build pipeline failed: {err.message}"[:2000])
            await self.settled()
            await self._summarize_ending(params, "failed", err.message)
            raise
        self.settle(origin, "completed", "the build pipeline completed; summary attached",
                    result.summary_path)
        await self.settled()
        self.finish(self.status.outcome or "success", result.summary_path)
        return result

    async def _summarize_ending(self, params: BuildPipelineInput, outcome: str,
                                why: str) -> None:
        """A build that did not close still leaves its summary: how it ended and why.
        Rejected and timed-out builds wrote theirs already."""
        if self._summarized:
            self.finish(self.status.outcome or outcome, self.status.summary_path)
            return
        with contextlib.suppress(ActivityError):  # the run's own ending comes first
            await self.summarize(params, self._started or workflow.now(),
                                 [*self.status.stages_done], self._found or TriageOutput(),
                                 outcome, None, ending=why[:2000])
        self.finish(outcome, self.status.summary_path)

    def _input(self, raw: dict[str, Any]) -> BuildPipelineInput:
        try:
            return checked_input(BuildPipelineInput, raw)
        except ApplicationError:
            self.status.stage = "invalid input"
            raise

    def _stage_runner(self, params: BuildPipelineInput,
                      settings: StageSettings) -> Callable[..., Awaitable[BuildPhaseResult]]:
        """One agent stage of this build, by its kind and payload fields."""
        build, agent, origin = params.build_name, params.target_agent, params.task_id

        async def stage(kind: Stage, **fields: Any) -> BuildPhaseResult:
            return await self.run_agent_stage(StageCall(
                kind, kind.agent or agent, build, {"build_name": build, **fields},
                settings.limit(kind), origin=origin, refs=(params.plan_path,)))
        return stage

    async def _stages(self, params: BuildPipelineInput,
                      settings: StageSettings) -> BuildPipelineResult:
        started, origin = self._started or workflow.now(), params.task_id
        stage = self._stage_runner(params, settings)
        await stage(PREFAB, plan_path=params.plan_path)
        built = await stage(IMPLEMENT, originating_task_id=origin, plan_path=params.plan_path)
        await stage(AUDIT, plan_path=params.plan_path,
                    implement_report=built.output[:REPORT_CHARS])
        return await self._decide(params, settings, started)

    async def _decide(self, params: BuildPipelineInput, settings: StageSettings,
                      started: datetime) -> BuildPipelineResult:
        """Blocks are notified as soon as triage finds them and may be decided from then on
        (a decision taken while fixes run counts once they end); each set of blocks is
        decided on its own: blocks read after an approval are notified and decided again."""
        build, origin = params.build_name, params.task_id
        stage = self._stage_runner(params, settings)
        triage, refused = await self._read_triage(build, settings)
        found = triage  # every finding of this build, for the summary
        phases, again = ["prefab", "implement", "audit", "triage"], False
        while True:
            self._found = found
            if triage.blocks:
                self._notify(params, triage)
            if triage.flags:
                await stage(FIXES, flags=triage.flags)
                phases.append("fixes")
            if not triage.blocks:
                break
            if again:  # the approval of the last set is settled before this one is decided
                await self.settled()
            # The originating task is marked (the park entry a file decision must follow)
            # and the first notification tried before the wait begins.
            await workflow.wait_condition(lambda: self._tried >= self._notified)
            outcome = await self._park(params, triage.blocks, settings,
                                       "new block(s) from the corrected triage file"
                                       if again else "block(s)")
            if outcome != "approved":
                await self.summarize(params, started, phases, found, outcome, None)
                raise self.ending_error(build, outcome)
            decided = self.gate.decided or BlockDecision(by="task-file")
            why = f": {decided.reason}" if decided.reason else ""
            self.settle(origin, "in-progress", f"blocks approved by {decided.by}{why}; "
                                               f"the build goes on")
            fixed = await self._reread_triage(build) if refused else None
            if fixed is None:  # decided; or still unreadable: approved as it stands
                break
            refused, triage, again = False, fixed, True
            found = TriageOutput(blocks=found.blocks + fixed.blocks, flags=fixed.flags,
                                 info=fixed.info, path=fixed.path)
            self._show_triage(fixed, None)
            if fixed.blocks:  # a new set of blocks: a decision of its own
                self.gate = DecisionGate()
                self.status.decision = self.status.decided_by = None
                self.status.decision_reason = None
        close = await stage(CLOSE)
        phases.append("close")
        path = await self.summarize(params, started, phases, found,
                                    finished_outcome(len(found.blocks)), close.output or None)
        return BuildPipelineResult(workflow_id=workflow.info().workflow_id, summary_path=path)

    def _show_triage(self, triage: TriageOutput, refused: str | None) -> None:
        """What the operator's views show of the audit: the findings in their own words."""
        status = self.status
        status.blocks, status.flags = len(triage.blocks), len(triage.flags)
        status.findings = [] if refused else shown(triage.blocks)
        status.flag_findings = shown(triage.flags)
        status.triage_path, status.triage_refused = triage.path, refused
        self._show()

    def _notify(self, params: BuildPipelineInput, triage: TriageOutput) -> None:
        """Open the decision and notify in the background (the build goes on meanwhile)."""
        self.gate.parked = True
        notice = BlockNotice(build_name=params.build_name, task_id=params.task_id,
                             blocks=triage.blocks, flags=len(triage.flags),
                             triage_file=triage.path)
        task = asyncio.create_task(self._send_notice(notice, self.gate))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)
        self._notified += 1

    async def _send_notice(self, notice: BlockNotice, gate: DecisionGate) -> None:
        """Tried again while backends fail, each time only where it was not delivered, until
        the blocks are decided; a failure stands as *Attention* until a later try gets
        through (or the decision makes it moot)."""
        for attempt in range(1, NOTICE_TRIES + 1):
            if attempt > 1 and (gate.decision is not None or self.status.outcome):
                self.stand(None)
                return
            try:
                result = await workflow.execute_activity_method(
                    BlockActivities.notify_findings, notice,
                    start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=LIVENESS,
                    retry_policy=SHORT, summary=f"notify · {len(notice.blocks)} block(s) · "
                                                f"originating task {notice.task_id}")
                failed = "; ".join(f"{name}: {why}" for name, why in result.failed.items())
                notice = notice.model_copy(update={"mark_task": False,
                                                   "skip": result.delivered})
            except ActivityError as err:
                failed = f"the notification activity failed: {err.cause or err}"
            self._tried += attempt == 1
            if not failed:
                self.stand(None)
                return
            if attempt == NOTICE_TRIES:
                self.stand(f"block notification failed {attempt} times ({failed}); nobody "
                           f"was told: decide from buildctl.py status or the Web UI")
                return
            pause = self.handoff.recheck * 2 ** (attempt - 1)
            self.stand(f"block notification failed ({failed}); trying again in {pause:g} s "
                       f"(try {attempt} of {NOTICE_TRIES})")
            await workflow.sleep(timedelta(seconds=pause))

    async def _read_triage(self, build: str,
                           settings: StageSettings) -> tuple[TriageOutput, bool]:
        """The audit's findings; a file we cannot read is never a clean audit: it becomes
        one block for the operator ("triage file unreadable: ..."), so nothing is lost."""
        try:
            return await self._triage(build, settings), False
        except ActivityError as err:
            refused = triage_refusal(err)
            if refused is None:
                raise
        reason, path = refused
        workflow.logger.warning("triage_refused", extra={"build": build, "reason": reason})
        refusal = f"triage file unreadable: {reason}"
        unreadable = TriageOutput(blocks=[refusal], path=path)
        self._show_triage(unreadable, refusal)
        self.done("triage")
        return unreadable, True

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
                                    extra={"build": build, "refused": triage_refusal(err)})
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
                non_retryable_error_types=[TRIAGE_FORMAT_ERROR]),
            summary=f"triage · read triage-output.yml for {build}")
        self._show_triage(triage, None)
        self.done("triage")
        return triage

    async def _park(self, params: BuildPipelineInput, blocks: list[str],
                    settings: StageSettings, what: str = "block(s)") -> str:
        """Wait durably for approve/reject (signal, update or task file), or the deadline."""
        task_id = params.task_id
        deadline = workflow.now() + timedelta(seconds=settings.block_wait_timeout)
        self.status.deadline = deadline
        self.enter("wait", f"operator decision on {len(blocks)} {what}: approve or reject "
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
        self._note_decision()
        return verdict

    def _note_decision(self) -> None:
        """Who decided (and why) is shown as soon as a decision counts; a failed notification's
        *Attention* goes with it (moot now), not at the notification's next try."""
        decided = self.gate.decided
        if decided is not None:
            self.status.decision = self.gate.verdict
            self.status.decided_by, self.status.decision_reason = decided.by, decided.reason
            self.stand(None)  # shows the change too

    @workflow.signal(name=Handler.APPROVE)
    def approve(self, decision: BlockDecision) -> None:
        if self.gate.decide("approved", decision):
            self._note_decision()

    @workflow.signal(name=Handler.REJECT)
    def reject(self, decision: BlockDecision) -> None:
        if self.gate.decide("rejected", decision):
            self._note_decision()

    @workflow.update(name=Handler.APPROVE_BLOCKS)
    def approve_blocks(self, decision: BlockDecision) -> str:
        if self.gate.decide("approved", decision):
            self._note_decision()
        return "approved"

    @approve_blocks.validator
    def _validate_approve(self, decision: BlockDecision) -> None:
        self.gate.refuse_unless_due(decision)

    @workflow.update(name=Handler.REJECT_BLOCKS)
    def reject_blocks(self, decision: BlockDecision) -> str:
        if self.gate.decide("rejected", decision):
            self._note_decision()
        return "rejected"

    @reject_blocks.validator
    def _validate_reject(self, decision: BlockDecision) -> None:
        self.gate.refuse_unless_due(decision)

    async def summarize(self, params: BuildPipelineInput, started: datetime, phases: list[str],
                        triage: TriageOutput, outcome: str, report: str | None,
                        ending: str | None = None) -> str:
        self.enter("summary", None)
        decided = self.gate.decided
        record = WorkflowSummary(
            workflow_id=workflow.info().workflow_id, build_name=params.build_name,
            started=started, completed=workflow.now(), phases_completed=phases,
            blocks_hit=len(triage.blocks), flags_applied=len(triage.flags),
            outcome=outcome, plan_path=params.plan_path, build_report_path=report,
            decided_by=decided.by if decided else None,
            reason=(decided.reason or None) if decided else None,
            blocks=triage.blocks, flags=triage.flags, triage_file=triage.path, ending=ending)
        path = await workflow.execute_activity_method(
            SummaryActivities.write_summary, record,
            start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=LIVENESS,
            retry_policy=SHORT,
            summary=f"summary · outcome {record.outcome}")
        self.done("summary")
        self._summarized = True
        self.status.outcome, self.status.summary_path = outcome, path
        return path

    def ending_error(self, build: str, outcome: str) -> ApplicationError:
        who = self.gate.decided
        if outcome == "rejected" and who:
            why = f": {who.reason}" if who.reason else ""
            return ApplicationError(f"Build {build} rejected by {who.by}{why}",
                                    type=BUILD_REJECTED, non_retryable=True)
        return ApplicationError(f"Build {build}: no block decision before the deadline",
                                type="BlockWaitTimedOut", non_retryable=True)

