"""What both workflows share: progress, the operator's signals, and agent-stage hand-over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.lifecycle import TaskLifecycle
    from activities.queues import QueueActivities
    from activities.stage_settings import SettingsActivities
    from contract import DISPATCH_STAGE, Handler
    from models import (
        BuildPhaseResult,
        Progress,
        QueueProbe,
        QueueState,
        StageSettings,
        StageTask,
        TaskCancellation,
        TaskSettlement,
    )
    from safeio.inert import markdown
    from stages import Stage
    from taskdir.names import stage_task_id
    from workflows.handoff import Handoff
    from workflows.stage_results import (
        agent_retry,
        failed_result,
        is_silence,
        stage_failure,
        stage_result,
    )

P = TypeVar("P")


@dataclass(frozen=True)
class StageCall:
    """One agent stage as a run asks for it (its identity comes from the stage table)."""

    stage: Stage
    agent: str
    build: str  # build or plan name
    fields: dict[str, Any]  # the stage's payload fields of the upstream contract
    timeout: float
    phase: int | None = None  # a plan's phase number
    attempts: int = 1
    origin: str | None = None  # the originating task
    refs: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        """What progress shows: the stage's kind, or "phase <n>"."""
        return self.stage.kind if self.phase is None else f"phase {self.phase}"

    @property
    def label(self) -> str:
        """How failures name it."""
        return f"Stage {self.name}" if self.phase is None else f"Phase {self.phase}"


class BuildWorkflowBase:
    """Base for workflows that hand stages to agents; owns progress and re-dispatch."""

    def __init__(self) -> None:
        self.status = Progress(stage="starting")
        self.handoff = Handoff()
        self._redispatch = False
        self._routes: dict[str, str] = {}
        self._liveness: float | None = None  # AGENT_HEARTBEAT_TIMEOUT of this run
        self._silence, self._reoffers = "reoffer", 0
        self._standing: str | None = None  # an alert that outlives stage changes

    async def load_settings(self) -> StageSettings:
        """The worker's stage settings and agent routes, recorded once in this history."""
        settings = await workflow.execute_local_activity_method(
            SettingsActivities.load_stage_settings,
            start_to_close_timeout=timedelta(seconds=30), summary="load stage settings")
        self._routes = settings.agent_queues
        self.handoff.recheck = settings.block_check_interval
        self._liveness = settings.agent_heartbeat_timeout
        self._silence, self._reoffers = settings.agent_silence, settings.agent_reoffers
        return settings

    def host_queue(self, agent: str) -> str | None:
        """The task queue of AGENT's host when it is not ours (None: this run's queue)."""
        queue = self._routes.get(agent)
        return queue if queue and queue != workflow.info().task_queue else None

    @workflow.query(name=Handler.PROGRESS)
    def progress(self) -> Progress:
        return self.status

    @workflow.signal(name=Handler.REDISPATCH)
    def redispatch(self) -> None:
        """Ask for the current agent stage's task file to be written again (recovery)."""
        if self._waits_on_agent():
            self._redispatch = True

    @workflow.signal(name=Handler.DEAD_LETTERED)
    def stage_dead_lettered(self, note: str) -> None:
        """The sweeper found the current stage's task file in dead-letters/: say so."""
        if self._waits_on_agent():
            self.attention(note)

    @workflow.signal(name=Handler.ATTENTION)
    def attention(self, note: str) -> None:
        """The sweeper found something wrong with the file this run waits on (or refused
        what it says): show it as *Attention* while the run waits."""
        if self.status.waiting_on:
            self.status.alert = str(note)[:500]
            self._show()

    def _waits_on_agent(self) -> bool:
        return bool(self.status.waiting_on and self.status.waiting_on.startswith("agent"))

    def enter(self, stage: str, waiting_on: str | None, queue: str | None = None) -> None:
        self.status.stage = stage
        self.status.waiting_on = waiting_on
        self.status.alert = self._standing
        self.status.queue, self.status.queue_unpolled = queue, False
        self._show()

    def done(self, stage: str) -> None:
        self.status.stages_done.append(stage)
        self.status.waiting_on = None

    def stand(self, note: str | None) -> None:
        """An *Attention* note that stays until cleared (e.g. a failed block notification);
        clearing it leaves any other note (the sweeper's) as it is."""
        if note is not None or self.status.alert == self._standing:
            self.status.alert = note
        self._standing = note
        self._show()

    def finish(self, outcome: str, summary_path: str | None = None) -> None:
        """The run ended: say how (and where its summary is) instead of what it waits on."""
        self.status.outcome, self.status.summary_path = outcome, summary_path
        self.status.stage = "complete" if outcome in ("success", "partial") else "ended"
        self.status.waiting_on, self.status.deadline = None, None
        self._standing = self.status.alert = None  # nothing is waited on now
        self._show()

    def _show(self) -> None:
        """The Web UI's Current Details: agent-written text is escaped, lists are bounded."""
        status = self.status
        lines = [f"**Stage:** {status.stage}"]
        if status.outcome:
            where = f" · summary: {markdown(status.summary_path, 1000)}" \
                if status.summary_path else ""
            lines.append(f"**Ended:** {status.outcome}{where}")
        else:
            lines.append(f"**Waiting on:** {status.waiting_on or 'nothing (running)'}")
        if status.queue and not status.outcome:
            lines.append(f"**Host queue:** {status.queue}" + (
                " — no worker polls it (is the host down?); the stage is handed over as "
                "soon as one does" if status.queue_unpolled else ""))
        lines += self._findings_shown()
        if status.alert:
            lines.append(f"**Attention:** {markdown(status.alert)}")
        workflow.set_current_details("\n\n".join(lines))

    def _findings_shown(self) -> list[str]:
        """The blocks in their own words (the first ten), the flags counted, the decision."""
        status, lines = self.status, []
        if status.triage_refused:
            lines.append(f"**Triage file refused:** {markdown(status.triage_refused, 800)}")
        elif status.findings:
            shown = status.findings[:10]
            more = status.blocks - len(shown)
            lines.append(f"**Blocks ({status.blocks}):**\n" + "\n".join(
                f"{n}. {markdown(text, 300)}" for n, text in enumerate(shown, start=1))
                + (f"\n\n… and {more} more (`buildctl.py status`)" if more > 0 else ""))
        if status.flags:
            lines.append(f"**Flags:** {status.flags}, handed to the build's agent to fix")
        if status.decided_by:
            why = f": {markdown(status.decision_reason)}" if status.decision_reason else ""
            lines.append(f"**Decision:** {status.decision or 'taken'} by "
                         f"{markdown(status.decided_by, 200)}{why}")
        return lines

    async def withdraw(self, task_id: str, stage: str, queue: str | None = None) -> None:
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

    def settle(self, task_id: str, status: str, note: str, output: str | None = None,
               by: str | None = None, queue: str | None = None) -> None:
        """Move a task file along in the background, as this run's hand-off does it
        (awaited by `settled` before the end)."""
        self.handoff.settle(TaskSettlement(
            task_id=task_id, status=status, note=note[:2000],
            output=None if output is None else output[:100_000], by=by), queue)

    async def settled(self) -> None:
        await self.handoff.settled()

    async def run_agent_stage(self, call: StageCall) -> BuildPhaseResult:
        """One agent stage: its identity decided here, once; dispatched, awaited, settled.

        Started again when `redispatch` arrives (the sweeper found no task file)."""
        task_id = stage_task_id(workflow.info().run_id, call.stage.task_key(call.phase))
        queue = self.host_queue(call.agent)
        task = StageTask(task_id=task_id, kind=call.stage.kind, target_agent=call.agent,
                         build=call.build, fields=call.fields, originating_task_id=call.origin,
                         context_refs=list(call.refs), settle=self.handoff.carry(queue))
        self.status.task_ids[call.name] = task_id
        self.enter(call.name, f"agent {call.agent}: task {task_id}", queue)
        self.handoff.show_dispatch(task_id, queue)
        raw, error = await self._offered(call, task, queue)
        self.handoff.clear_dispatch(task_id)
        try:
            if error is not None:
                raise error
            result = stage_result(raw, call.label)
        except (ActivityError, ApplicationError) as err:
            failure = (err if isinstance(err, ApplicationError)
                       else stage_failure(call.label, err, self._silence_note(call.agent)))
            self.settle(task_id, "failed", failure.message, failure.message, call.agent, queue)
            await self.settled()
            raise failure from None
        if result.status != "success":
            failure = failed_result(call.label, result.output)
            self.settle(task_id, "failed", failure.message, result.output, call.agent, queue)
            await self.settled()
            raise failure
        self.settle(task_id, "completed", f"stage {call.name} completed", result.output,
                    call.agent, queue)
        self.done(call.name)
        return result

    async def _offered(self, call: StageCall, task: StageTask,
                       queue: str | None) -> tuple[RawValue | None, ActivityError | None]:
        """The stage's ending: offered again to a silent agent while re-offers remain."""
        summary = f"{call.name} · agent {call.agent} · task {task.task_id}"
        reoffers = 0
        while True:
            handle = await self._handed_over(task, queue, call, summary)
            try:
                return await handle, None
            except ActivityError as err:
                if not self._reoffer(err, reoffers, call.agent, call.name):
                    return None, err
            reoffers += 1
            task = task.model_copy(update={"settle": None, "note": (
                f"re-offered ({reoffers} of {self._reoffers}): agent {call.agent} sent no "
                f"heartbeat for {self._liveness:g} s")})

    async def _handed_over(self, task: StageTask, queue: str | None, call: StageCall,
                           summary: str) -> workflow.ActivityHandle:
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
                start_to_close_timeout=timedelta(seconds=call.timeout),
                heartbeat_timeout=timedelta(seconds=liveness) if liveness else None,
                retry_policy=agent_retry(call.attempts), summary=summary,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if liveness else workflow.ActivityCancellationType.TRY_CANCEL)
            try:
                await self._await_dispatch(handle, queue)
            except asyncio.CancelledError:
                await self.withdraw(task.task_id, call.name, queue)
                if liveness:
                    handle.cancel()
                    with contextlib.suppress(ActivityError, CancelledError,
                                             asyncio.CancelledError):
                        await handle
                raise
            if handle.done():
                return handle
            workflow.logger.warning("stage_redispatched", extra={"stage": call.name})
            handle.cancel()
            with contextlib.suppress(ActivityError, CancelledError, asyncio.CancelledError):
                await handle

    def _reoffer(self, error: ActivityError, done: int, agent: str, stage: str) -> bool:
        """A silent agent's stage is offered again (AGENT_SILENCE=reoffer) while re-offers
        remain; anything else ends the stage."""
        if not is_silence(error) or self._silence != "reoffer" or done >= self._reoffers:
            return False
        workflow.logger.warning("stage_reoffered", extra={"stage": stage, "agent": agent,
                                                          "reoffer": done + 1})
        return True

    def _silence_note(self, agent: str) -> str | None:
        return (f"agent {agent} sent no heartbeat for {self._liveness:g} s "
                f"(AGENT_HEARTBEAT_TIMEOUT)" if self._liveness else None)

    async def _await_dispatch(self, handle: workflow.ActivityHandle[Any],
                              queue: str | None) -> None:
        """Wait for the stage's activity (or a redispatch), watching its host's queue until
        the stage is taken (no timeout meanwhile)."""
        def ready() -> bool:
            return handle.done() or self._redispatch

        if queue is not None:
            await self._watch_host(queue, ready)
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
                await workflow.wait_condition(
                    ready, timeout=timedelta(seconds=self.handoff.recheck))
        self._mark_unpolled(False)
        await workflow.wait_condition(ready)

    async def _probe(self, probe: Callable[[Any, QueueProbe], Awaitable[P]], queue: str,
                     unknown: P) -> P:
        """Ask (and record) about QUEUE's pollers with the local activity PROBE; UNKNOWN when
        it cannot tell (no alarm)."""
        try:
            return await workflow.execute_local_activity_method(
                probe, QueueProbe(task_queue=queue), start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=2), summary=f"pollers of {queue}")
        except ActivityError:
            return unknown

    def _mark_unpolled(self, unpolled: bool) -> None:
        if self.status.queue_unpolled != unpolled:
            self.status.queue_unpolled = unpolled
            if unpolled:
                workflow.logger.warning("host_queue_unpolled",
                                        extra={"task_queue": self.status.queue})
            self._show()
