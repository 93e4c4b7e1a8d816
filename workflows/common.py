"""What both workflows share: stage settings, agent-stage dispatch with re-dispatch, progress."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout  # not the builtin

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.lifecycle import TaskLifecycle
    from activities.queues import QueueActivities
    from activities.settings import SettingsActivities
    from models import (
        DISPATCH_STAGE,
        STAGE_ACTIVITY,
        BuildPhaseResult,
        Progress,
        QueueProbe,
        QueueState,
        StageKind,
        StageSettings,
        StageTask,
        TaskCancellation,
        TaskSettlement,
        describe_errors,
    )
    from taskdir.documents import stage_task_id

M = TypeVar("M", bound=BaseModel)
P = TypeVar("P")

PHASE_FAILED = "PhaseFailedError"
# Version marker recorded at the start of every run this code starts. A run without it was
# started by v0.5 and is continued with v0.5's exact command sequence (workflows/v05.py).
NATIVE_RUN = "native-run-0.7"
# Recorded (from 0.9 on) only by a new run whose plan_path is relative, which it refuses
# (runs started before with one replay as they were).
ABSOLUTE_PLAN_PATH = "absolute-plan-path-0.9"
# Recorded (from 0.9 on) at a run's first routed stage: the host queue is looked at until the
# stage is taken from it (not only once), and settlements on a host queue are bounded.
HOST_LIVENESS = "host-liveness-0.9"
# Recorded next in runs started from 0.8 on: the next stage's task is scheduled first and
# settles the finished stage's file when both are on one host (else settle_task follows),
# and the memo is set once per hand-off (not cleared first).
LEAN_HANDOFF = "lean-handoff-0.8"
# Recorded (from 0.9 on) when a triage file is refused: the build parks for an operator
# decision instead of failing (runs that failed on a refused triage before replay as they were).
TRIAGE_REFUSAL_PARKS = "refused-triage-parks-0.9"
PIPELINE, PLAN = "BuildPipelineWorkflow", "BuildPlanWorkflow"  # Temporal type names
# Visibility queries for our pipelines and plans on one task queue (format task_queue=...).
BUILDS_QUERY = f"TaskQueue = '{{task_queue}}' AND WorkflowType IN ('{PIPELINE}', '{PLAN}')"
RUNNING_BUILDS_QUERY = BUILDS_QUERY + " AND ExecutionStatus = 'Running'"
DISPATCH_MEMO = "dispatch_task_id"  # the agent task this run waits on (read by the sweeper)
AWAIT_MEMO = "awaiting_task_id"  # the originating task a parked pipeline waits on
QUEUE_MEMO = "dispatch_queue"  # the host queue of that agent task (absent: the run's own)


def agent_retry(attempts: int = 1) -> RetryPolicy:
    return RetryPolicy(maximum_attempts=attempts, non_retryable_error_types=[PHASE_FAILED])


def invalid_input(message: str) -> ApplicationError:
    """The run's input cannot be used: fail the run at once, naming every problem."""
    return ApplicationError(f"invalid input: {message}", type="InvalidInput",
                            non_retryable=True)


def checked_input(model: type[M], raw: Any) -> M:
    """Validate a run's input inside the run, not in the data converter: a run with bad input
    then fails with one message naming every invalid field, and still answers queries."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise invalid_input(describe_errors(err)) from None


def note_ignored_keys(params: Any) -> None:
    """Say once (not on replay) which input keys this run ignores."""
    if params.ignored_keys():
        workflow.logger.warning("input_keys_ignored", extra={"keys": params.ignored_keys()})


def started_by_v05() -> bool:
    """True for runs v0.5 started (no marker in their history); call first in `run`."""
    return not workflow.patched(NATIVE_RUN)


def stage_result(raw: RawValue, label: str) -> BuildPhaseResult:
    """An agent's completion as BuildPhaseResult. It is data: one we cannot decode (an unknown
    encoding, a wrong shape) fails the stage with a clear message, never the workflow task."""
    try:
        return workflow.payload_converter().from_payload(raw.payload, BuildPhaseResult)
    except Exception:
        encoding = raw.payload.metadata.get("encoding", b"").decode("utf-8", "replace")[:40]
        raise ApplicationError(
            f"{label} failed: the agent's completion could not be read (encoding "
            f"{encoding or 'none'!r}); complete the stage with complete_activity.py",
            type=PHASE_FAILED, non_retryable=True) from None


def stage_failure(label: str, error: BaseException,
                  silence: str | None = None) -> ApplicationError:
    """A non-retryable workflow failure naming the stage and the agent's message (or, for a
    heartbeat timeout, the agent's silence)."""
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    message = getattr(cause, "message", None) or str(cause)
    if silence and isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.HEARTBEAT:
        message = silence
    return ApplicationError(f"{label} failed: {message}", type=PHASE_FAILED,
                            non_retryable=True)


class DispatchingWorkflow:
    """Base for workflows that hand stages to agents; owns progress and re-dispatch."""

    def __init__(self) -> None:
        self._progress = Progress(stage="starting")
        self._redispatch = False
        self._settling: list[workflow.ActivityHandle[bool]] = []
        self._routes: dict[str, str] = {}
        self._recheck = 30.0
        self._lean = False
        self._after_step: list[asyncio.Task[None]] = []
        self._unsettled: list[tuple[TaskSettlement, str | None]] = []  # lean runs
        self._memo_task: str | None = None  # DISPATCH_MEMO as last upserted (lean runs)
        self._memo_queue: str | None = None
        self._liveness: float | None = None  # AGENT_HEARTBEAT_TIMEOUT of this run
        self._silence, self._reoffers = "reoffer", 0

    def choose_handoff(self) -> None:
        """Call right after `started_by_v05()`: runs started before 0.8 keep their order."""
        self._lean = workflow.patched(LEAN_HANDOFF)

    def _soon(self, action: Callable[[], None]) -> None:
        """Run ACTION once this workflow step has issued its next command (lean runs)."""
        async def later() -> None:
            action()

        self._after_step.append(asyncio.create_task(later()))

    async def load_settings(self) -> StageSettings:
        """The worker's stage settings and agent routes, recorded once in this history."""
        settings = await workflow.execute_local_activity_method(
            SettingsActivities.load_stage_settings,
            start_to_close_timeout=timedelta(seconds=30), summary="load stage settings")
        self._routes, self._recheck = settings.agent_queues, settings.block_check_interval
        self._liveness = settings.agent_heartbeat_timeout
        self._silence, self._reoffers = settings.agent_silence, settings.agent_reoffers
        return settings

    def host_queue(self, agent: str) -> str | None:
        """The task queue of AGENT's host when it is not ours (None: this run's queue)."""
        queue = self._routes.get(agent)
        return queue if queue and queue != workflow.info().task_queue else None

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        return self._progress

    @workflow.signal(name="redispatch")
    def redispatch(self) -> None:
        """Ask for the current agent stage's task file to be written again (recovery)."""
        if self._progress.waiting_on and self._progress.waiting_on.startswith("agent"):
            self._redispatch = True

    @workflow.signal(name="stage_dead_lettered")
    def stage_dead_lettered(self, note: str) -> None:
        """The sweeper found the current stage's task file in dead-letters/: say so."""
        if self._progress.waiting_on and self._progress.waiting_on.startswith("agent"):
            self.attention(note)

    @workflow.signal(name="attention")
    def attention(self, note: str) -> None:
        """The sweeper found something wrong with the file this run waits on (or refused
        what it says): show it as *Attention* while the run waits."""
        if self._progress.waiting_on:
            self._progress.alert = str(note)[:500]
            self._show()

    async def _withdraw(self, task_id: str, stage: str, queue: str | None = None) -> None:
        """The run was cancelled while an agent held the stage: mark its task file cancelled."""
        workflow.logger.info("stage_cancelled", extra={"stage": stage})
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity_method(
                TaskLifecycle.mark_task_cancelled,
                TaskCancellation(task_id=task_id,
                                 note=f"pipeline cancelled during stage {stage}; do not start"),
                task_queue=queue, start_to_close_timeout=timedelta(minutes=1),
                heartbeat_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(
                    maximum_attempts=3), summary=f"withdraw task {task_id}")

    def enter(self, stage: str, waiting_on: str | None, queue: str | None = None) -> None:
        self._progress.stage = stage
        self._progress.waiting_on = waiting_on
        self._progress.alert = None
        self._progress.queue, self._progress.queue_unpolled = queue, False
        self._show()

    def _show(self) -> None:
        progress = self._progress
        host = f"\n\n**Host queue:** {progress.queue}" if progress.queue else ""
        if progress.queue_unpolled:
            host += (" — no worker polls it (is the host down?); the stage is handed over "
                     "as soon as one does")
        alert = f"\n\n**Attention:** {progress.alert}" if progress.alert else ""
        workflow.set_current_details(
            f"**Stage:** {progress.stage}\n\n**Waiting on:** "
            f"{progress.waiting_on or 'nothing (running)'}{host}{alert}")

    async def _probe(self, probe: Callable[[Any, QueueProbe], Awaitable[P]], queue: str,
                     unknown: P) -> P:
        """Ask (and record) about QUEUE's pollers with the local activity PROBE (0.8 runs:
        queue_polled, later: host_queue_state); UNKNOWN when it cannot tell (no alarm)."""
        try:
            return await workflow.execute_local_activity_method(
                probe, QueueProbe(task_queue=queue), start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=2), summary=f"pollers of {queue}")
        except ActivityError:
            return unknown

    async def _await_dispatch(self, handle: workflow.ActivityHandle[Any],
                              queue: str | None) -> None:
        """Wait for the stage's activity (or a redispatch); while its host queue has no
        poller, say so and look again every check interval (no timeout meanwhile)."""
        def ready() -> bool:
            return handle.done() or self._redispatch

        if queue is not None and workflow.patched(HOST_LIVENESS):
            await self._watch_host(queue, ready)
            return
        polled = QueueActivities.queue_polled
        unpolled = queue is not None and not await self._probe(polled, queue, True)
        while unpolled and not ready():
            self._mark_unpolled(True)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(ready, timeout=timedelta(seconds=self._recheck))
            unpolled = not ready() and not await self._probe(polled, queue, True)
        self._mark_unpolled(False)
        await workflow.wait_condition(ready)

    async def _watch_host(self, queue: str, ready: Callable[[], bool]) -> None:
        """Look at QUEUE every check interval until its host's worker has taken the stage:
        a host that stops before (or just as) the stage is queued is reported once the
        server stops counting it (90 s), whenever that is."""
        while not ready():
            state = await self._probe(QueueActivities.host_queue_state, queue,
                                      QueueState(polled=True, started=False))
            self._mark_unpolled(not state.polled and not state.started)
            if state.started:
                break
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(ready, timeout=timedelta(seconds=self._recheck))
        self._mark_unpolled(False)
        await workflow.wait_condition(ready)

    def _mark_unpolled(self, unpolled: bool) -> None:
        if self._progress.queue_unpolled != unpolled:
            self._progress.queue_unpolled = unpolled
            if unpolled:
                workflow.logger.warning("host_queue_unpolled",
                                        extra={"task_queue": self._progress.queue})
            self._show()

    def done(self, stage: str) -> None:
        self._progress.stages_done.append(stage)
        self._progress.waiting_on = None

    async def run_v05_stage(self, stage: str, kind: StageKind, agent: str, args: list[Any],
                            timeout: float, attempts: int = 1,
                            key_suffix: str = "") -> BuildPhaseResult:
        """One agent stage of a run v0.5 started: v0.5's exact command, our progress."""
        task_id = stage_task_id(workflow.info().run_id, STAGE_ACTIVITY[kind] + key_suffix)
        self._progress.task_ids[stage] = task_id
        self.enter(stage, f"agent {agent}: task {task_id}")
        try:  # v0.5's activity for KIND by its name; its result read by stage_result
            raw = await workflow.execute_activity(
                STAGE_ACTIVITY[kind], args=args, result_type=RawValue,
                start_to_close_timeout=timedelta(seconds=timeout),
                retry_policy=agent_retry(attempts),
                summary=f"{stage} · agent {agent} · run started by v0.5")
        except asyncio.CancelledError:
            await self._withdraw(task_id, stage)
            raise
        result = stage_result(raw, f"Stage {stage}")
        self.done(stage)
        return result

    def settle(self, task_id: str, status: str, note: str, output: str | None = None,
               by: str | None = None, queue: str | None = None) -> None:
        """Move a task file along in the background (awaited by `settled` before the end).

        Lean runs do it after the step's next command: the next stage's dispatch on the same
        host carries it (one activity fewer per hand-off), else its own settle_task."""
        settlement = TaskSettlement(task_id=task_id, status=status, note=note[:2000],
                                    output=None if output is None else output[:100_000], by=by)
        if not self._lean:
            self._start_settle(settlement, queue)
            return
        entry = (settlement, queue)
        self._unsettled.append(entry)

        def unless_carried() -> None:
            if entry in self._unsettled:
                self._unsettled.remove(entry)
                self._start_settle(settlement, queue)

        self._soon(unless_carried)

    def _carry_settlement(self, queue: str | None) -> TaskSettlement | None:
        """A settlement waiting for this step's next command, for a dispatch on QUEUE."""
        for entry in self._unsettled:
            if entry[1] == queue:
                self._unsettled.remove(entry)
                return entry[0]
        return None

    def _start_settle(self, settlement: TaskSettlement, queue: str | None) -> None:
        # Book-keeping on a host that is down must not hold the run: the host's sweep
        # settles the file when it is back (sweeper: stale stage files).
        bound = (timedelta(seconds=max(10.0, 4 * self._recheck))
                 if queue is not None and workflow.patched(HOST_LIVENESS) else None)
        self._settling.append(workflow.start_activity_method(
            TaskLifecycle.settle_task, settlement, schedule_to_close_timeout=bound,
            task_queue=queue, start_to_close_timeout=timedelta(minutes=1),
            heartbeat_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"task {settlement.task_id} → {settlement.status}"))

    async def settled(self) -> None:
        """Wait for every background task-file move (a failed one is only logged)."""
        await asyncio.gather(*self._after_step)
        self._after_step.clear()
        for handle in self._settling:
            with contextlib.suppress(ActivityError):
                await handle
        self._settling.clear()

    def _clear_dispatch_memo(self, task_id: str, routed: dict[str, Any]) -> None:
        """The run waits on no agent task now; lean runs skip this when the next stage's
        task replaces it in the same step (one memo command per hand-off)."""
        if not self._lean:
            workflow.upsert_memo({DISPATCH_MEMO: None, **dict.fromkeys(routed)})
            return

        def clear() -> None:
            if self._memo_task == task_id:  # no next stage took over
                workflow.upsert_memo({DISPATCH_MEMO: None, QUEUE_MEMO: None}
                                     if self._memo_queue else {DISPATCH_MEMO: None})
                self._memo_task = self._memo_queue = None

        self._soon(clear)

    async def _handed_over(self, task: StageTask, queue: str | None, timeout: float,
                           attempts: int, summary: str, stage: str) -> workflow.ActivityHandle:
        """Start the stage's activity and wait until it is done; started again when
        `redispatch` arrives (the sweeper found no task file)."""
        liveness = self._liveness
        while True:
            self._redispatch = False
            # Only start-to-close: time queued for a host that is down is not the agent's.
            # With liveness on, a silent agent ends the attempt, and a cancellation waits for
            # the agent's acknowledgement (its next heartbeat) or that silence.
            handle = workflow.start_activity(
                DISPATCH_STAGE, task, result_type=RawValue, task_queue=queue,
                start_to_close_timeout=timedelta(seconds=timeout),
                heartbeat_timeout=timedelta(seconds=liveness) if liveness else None,
                retry_policy=agent_retry(attempts), summary=summary,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if liveness else workflow.ActivityCancellationType.TRY_CANCEL)
            try:
                await self._await_dispatch(handle, queue)
            except asyncio.CancelledError:
                await self._withdraw(task.task_id, stage, queue)
                if liveness:
                    handle.cancel()
                    with contextlib.suppress(ActivityError, CancelledError,
                                             asyncio.CancelledError):
                        await handle
                raise
            if handle.done():
                return handle
            workflow.logger.warning("stage_redispatched", extra={"stage": stage})
            handle.cancel()
            with contextlib.suppress(ActivityError, CancelledError, asyncio.CancelledError):
                await handle

    def _reoffer(self, error: ActivityError, done: int, agent: str, stage: str) -> bool:
        """A silent agent's stage is offered again (AGENT_SILENCE=reoffer) while re-offers
        remain; anything else ends the stage."""
        silent = (isinstance(error.cause, ActivityTimeout)
                  and error.cause.type == TimeoutType.HEARTBEAT)
        if not silent or self._silence != "reoffer" or done >= self._reoffers:
            return False
        workflow.logger.warning("stage_reoffered", extra={"stage": stage, "agent": agent,
                                                          "reoffer": done + 1})
        return True

    def _silence_note(self, agent: str) -> str | None:
        return (f"agent {agent} sent no heartbeat for {self._liveness:g} s "
                f"(AGENT_HEARTBEAT_TIMEOUT)" if self._liveness else None)

    async def run_agent_stage(self, stage: str, agent: str, kind: StageKind, build: str,
                              fields: dict[str, Any], timeout: float, attempts: int = 1,
                              label: str | None = None, origin: str | None = None,
                              refs: tuple[str, ...] = (),
                              key_suffix: str = "") -> BuildPhaseResult:
        """One agent stage: its identity decided here, once; dispatched, awaited, settled.

        Started again when `redispatch` arrives (the sweeper found no task file)."""
        task_id = stage_task_id(workflow.info().run_id, STAGE_ACTIVITY[kind] + key_suffix)
        queue = self.host_queue(agent)
        task = StageTask(task_id=task_id, kind=kind, target_agent=agent, build=build,
                         fields=fields, originating_task_id=origin, context_refs=list(refs),
                         settle=self._carry_settlement(queue))
        self._progress.task_ids[stage] = task_id
        self.enter(stage, f"agent {agent}: task {task_id}", queue)
        summary = f"{stage} · agent {agent} · task {task_id}"
        routed = {QUEUE_MEMO: queue} if queue else {}  # the default run's memo is unchanged
        if self._lean and self._memo_queue and not queue:
            routed = {QUEUE_MEMO: None}  # the last stage was routed; this one is not
        workflow.upsert_memo({DISPATCH_MEMO: task_id, **routed})
        self._memo_task, self._memo_queue = task_id, queue
        reoffers = 0
        while True:
            handle = await self._handed_over(task, queue, timeout, attempts, summary, stage)
            try:
                raw, error = await handle, None
            except ActivityError as err:
                raw, error = None, err
            if error is None or not self._reoffer(error, reoffers, agent, stage):
                break
            reoffers += 1
            task = task.model_copy(update={"settle": None, "note": (
                f"re-offered ({reoffers} of {self._reoffers}): agent {agent} sent no "
                f"heartbeat for {self._liveness:g} s")})
        self._clear_dispatch_memo(task_id, routed)
        try:
            if error is not None:
                raise error
            result = stage_result(raw, label or f"Stage {stage}")
        except (ActivityError, ApplicationError) as err:
            failure = (err if isinstance(err, ApplicationError)
                       else stage_failure(label or f"Stage {stage}", err,
                                          self._silence_note(agent)))
            self.settle(task_id, "failed", failure.message, failure.message, agent, queue)
            await self.settled()
            raise failure from None
        if result.status != "success":
            message = f"{label or f'Stage {stage}'} failed: {result.output}"
            self.settle(task_id, "failed", message, result.output, agent, queue)
            await self.settled()
            raise ApplicationError(message, type=PHASE_FAILED, non_retryable=True)
        self.settle(task_id, "completed", f"stage {stage} completed", result.output, agent,
                    queue)
        self.done(stage)
        return result
