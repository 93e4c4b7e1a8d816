"""The reconciler between the shared task directory and Temporal, one pass per interval.

For every running pipeline or plan on our task queue it reads the memo (which task file the
run waits on) and makes Temporal agree with what the task-queue tooling, agents and operators
did to that file: a credible decision on a parked build's originating task is signalled; a
stage file finished through the tooling (`completed`/`failed`/`cancelled`) completes or fails
its activity with the token the file holds; a token-bearing file someone loosened is 0600
again; a stage file the dispatcher dead-lettered is reported (never silently re-created); a
stage whose file was never written (its worker died first) is re-dispatched.

Each worker sweeps the stages routed to its own task queue (a host worker: its host's; the
main worker: unrouted stages and parked builds). Workers sharing a directory take turns by
a flock, and every action is idempotent, so any number of them may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.workflowservice.v1 import CountWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecution, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.deps import Deps
from connection.task_token import TokenFacts, read_task_token
from contract import PHASE_FAILED, RUNNING_BUILDS_QUERY, Memo, decode_token, token_text
from models import BlockDecision, BuildPhaseResult
from taskdir import SOURCE_AGENT, DuplicateTaskId, load
from taskdir.locks import SWEEP_LOCK, TaskLocked
from taskdir.vocabulary import DECISIONS, TERMINAL
from workflows.build_pipeline import BuildPipelineWorkflow
from workflows.dispatching import DispatchingWorkflow

log = logging.getLogger("sweeper")
ORPHAN_GRACE = timedelta(seconds=5)
TURNS_BEFORE_SAYING = 3  # sweep passes without the turn lock before it is reported
# RPC statuses that mean Temporal (or its database) cannot be reached right now.
OUTAGE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                    RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.INTERNAL,
                    RPCStatusCode.UNKNOWN, RPCStatusCode.CANCELLED})
LIST_TIMEOUT = timedelta(seconds=30)  # a pass's listing of running builds
PROBE_TIMEOUT = timedelta(seconds=10)  # a server that does not answer is an outage
RESIGNAL_AFTER = 30.0  # seconds before the same orphaned stage is signalled again
STALE_AFTER = 10.0  # seconds a stage file must be untouched before it can count as stale


def outage(err: RPCError) -> bool:
    """ERR says Temporal cannot serve us right now. A frontend whose database is down says
    our namespace (found at start) is not found."""
    return err.status in OUTAGE or (err.status == RPCStatusCode.NOT_FOUND
                                    and "namespace" in err.message.lower())


async def activity_ending(client: Client, facts: TokenFacts) -> tuple[str, str] | None:
    """How the activity FACTS names ended, as a task status and note (None: not yet)."""
    note = "settled by the host's sweep: the stage {0} while this host's worker was away"
    closed = False
    async for event in client.get_workflow_handle(
            facts.workflow_id, run_id=facts.run_id).fetch_history_events():
        for kind, status, verb in _ENDINGS:
            if (event.HasField(kind)
                    and getattr(event, kind).scheduled_event_id == facts.scheduled_event_id):
                return status, note.format(verb)
        closed = closed or event.event_type in _RUN_CLOSED
    return ("cancelled", note.format("ended with its run")) if closed else None


_ENDINGS = (
    ("activity_task_completed_event_attributes", "completed", "completed"),
    ("activity_task_failed_event_attributes", "failed", "failed"),
    ("activity_task_timed_out_event_attributes", "failed", "timed out"),
    ("activity_task_canceled_event_attributes", "cancelled", "was cancelled"),
)
_RUN_CLOSED = {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW}


def _last_actor(history: object, status: object) -> str | None:
    """The actor of the newest history entry that set STATUS."""
    if not isinstance(history, list):
        return None
    for entry in reversed(history):
        if isinstance(entry, dict) and entry.get("status") == status:
            actor = entry.get("actor")
            return str(actor)[:200] if actor is not None else None
    return None


class Sweeper:
    """One pass per interval over the running builds, for the stages on our queue."""

    def __init__(self, client: Client, deps: Deps) -> None:
        config = deps.config
        self.client = client
        self.deps = deps
        self.tasks = deps.tasks
        self.interval = config.timings.block_check_interval
        self.queue, self.main = config.task_queue, config.role == "main"
        self._redispatched: dict[tuple[str, str], float] = {}
        self._reported: set[tuple[str, str]] = set()
        self._stale: set[str] = set()  # stage files settled (or unusable) by _settle_stale
        self._turns_missed = 0
        self.files_decide = config.file_channel == "open"
        self.stage_agents = frozenset(config.file_approvers)  # may finish any stage's file
        self.builds_queue = config.build_queue
        self.query = RUNNING_BUILDS_QUERY.format(task_queue=config.build_queue)
        self.address = config.client.address
        self._outage_since: float | None = None  # when Temporal stopped answering

    async def run_forever(self) -> None:
        while True:
            try:
                if await self._reachable():
                    await self.sweep()
            except Exception as err:  # a failed sweep is retried next interval
                log.warning("sweep_failed", extra={"error": f"{type(err).__name__}: {err}"[:300]})
            await asyncio.sleep(self.interval)

    async def _reachable(self) -> bool:
        """One count of our builds, not retried: whether Temporal (and its database) answers
        now. An outage is said once, and its end once; the pass waits for it to end."""
        try:
            await self.client.workflow_service.count_workflow_executions(
                CountWorkflowExecutionsRequest(namespace=self.client.namespace,
                                               query=self.query),
                retry=False, timeout=PROBE_TIMEOUT)
        except RPCError as err:
            if not outage(err):
                raise
            self._note_outage(err)
            return False
        self._note_recovery()
        return True

    def _note_outage(self, err: RPCError) -> None:
        """Temporal stopped answering: said once per outage (the worker keeps running; the
        SDK reconnects by itself), not once per pass."""
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("temporal_unreachable", extra={
                "address": self.address, "status": err.status.name,
                "effect": "sweeps wait; the worker reconnects by itself"})

    def _note_recovery(self) -> None:
        if self._outage_since is not None:
            log.info("temporal_reachable", extra={
                "address": self.address,
                "outage_seconds": round(time.monotonic() - self._outage_since, 1)})
            self._outage_since = None

    async def sweep(self) -> int:
        """Return how many workflows were acted on (0 when another worker has the turn)."""
        with self.tasks.sweep_turn() as mine:
            self._note_turn(mine)
            return await self._pass() if mine else 0

    def _note_turn(self, mine: bool) -> None:
        """A turn lock held through several intervals is said once (a stuck or hostile
        holder stalls file decisions and completions through the tooling)."""
        self._turns_missed = 0 if mine else self._turns_missed + 1
        if self._turns_missed == TURNS_BEFORE_SAYING:
            log.warning("sweep_turn_held", extra={
                "lock_file": str(self.tasks.root / ".locks" / SWEEP_LOCK),
                "passes_missed": self._turns_missed})

    async def _pass(self) -> int:
        acted = 0
        cutoff = time.monotonic() - RESIGNAL_AFTER
        self._redispatched = {k: t for k, t in self._redispatched.items() if t > cutoff}
        current: set[str] = set()
        trouble = await asyncio.to_thread(self.tasks.locks.trouble)
        async for execution in self.client.list_workflows(self.query, page_size=1000,
                                                          rpc_timeout=LIST_TIMEOUT):
            memo = await execution.memo()
            try:  # one build's file is handled on its own: it never stops the others'
                if trouble is not None and (self.main or self._ours(memo.get(Memo.QUEUE))):
                    await self._attention(execution, ".locks", "task_dir_entry_odd",
                                          f"task directory: {trouble}")
                if memo.get(Memo.AWAIT) and self.main:  # originating tasks: the main host
                    acted += await self._check_block(execution, str(memo[Memo.AWAIT]))
                elif memo.get(Memo.DISPATCH) and self._ours(memo.get(Memo.QUEUE)):
                    current.add(str(memo[Memo.DISPATCH]))
                    acted += await self._check_stage(execution, str(memo[Memo.DISPATCH]))
            except Exception as err:
                task_id = str(memo.get(Memo.AWAIT) or memo.get(Memo.DISPATCH))
                await self._attention(execution, task_id, "sweep_item_failed",
                                      f"task {task_id} could not be handled: "
                                      f"{type(err).__name__}: {err}"[:400])
        for path in await asyncio.to_thread(self.tasks.loose_token_files):
            await asyncio.to_thread(self.tasks.tighten, path)
        if not self.main:  # a host's settlements may have been given up while it was away
            acted += await self._settle_stale(current)
        return acted

    async def _settle_stale(self, current: set[str]) -> int:
        """Our open stage files that no run waits on any more: settle each as its activity
        ended (the run's settlement was bounded and gave up while this host was away)."""
        acted = 0
        for path, header in await asyncio.to_thread(self.tasks.stage_files):
            if header.status in TERMINAL or header.id in current or header.id in self._stale:
                continue
            try:  # each file on its own: a forged one never stops the pass
                acted += await self._settle_one(path, header.id)
            except RPCError as err:
                if outage(err):
                    raise  # the next pass, once Temporal answers again
                self._unusable(header.id, f"{err.status.name}: {err.message}")
            except Exception as err:
                self._unusable(header.id, f"{type(err).__name__}: {err}")
        return acted

    def _unusable(self, task_id: str, error: str) -> None:
        """A stage file the host's sweep cannot settle: said once, then left alone."""
        self._stale.add(task_id)
        log.warning("stage_file_unusable", extra={"task_id": task_id, "error": error[:200]})

    async def _settle_one(self, path: Path, task_id: str) -> int:
        """Settle one open stage file as its activity ended, once it is old enough."""
        age = time.time() - path.stat().st_mtime
        if age < max(STALE_AFTER, 4 * self.interval):
            return 0
        document = await asyncio.to_thread(load, path)
        facts = read_task_token(decode_token(token_text(document) or ""))
        ending = await activity_ending(self.client, facts)
        if ending is None:
            return 0  # still pending: an agent may yet finish it
        status, note = ending
        self._stale.add(task_id)
        try:
            await asyncio.to_thread(self.tasks.set_status, task_id, status, note,
                                    unless_terminal=True, path=path)
        except TaskLocked:
            self._stale.discard(task_id)  # someone holds it: next pass
            return 0
        log.info("stale_stage_settled", extra={"task_id": task_id, "status": status})
        return 1

    def _ours(self, stage_queue: object) -> bool:
        """Whether the stage's file is in our directory: it was routed to our queue."""
        return (stage_queue or self.builds_queue) == self.queue

    def _handle(self, execution: WorkflowExecution) -> WorkflowHandle:
        return self.client.get_workflow_handle(execution.id, run_id=execution.run_id)

    async def _attention(self, execution: WorkflowExecution, task_id: str, event: str,
                         note: str) -> None:
        """Report a problem with one build's file once: a log line and the build's
        *Attention* (Web UI current details, `progress.alert`)."""
        key = (execution.run_id or execution.id, f"{event}:{task_id}")
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning(event, extra={"workflow_id": execution.id, "task_id": task_id,
                                  "note": note})
        with contextlib.suppress(RPCError):
            await self._handle(execution).signal(DispatchingWorkflow.attention, note)

    async def _check_block(self, execution: WorkflowExecution, task_id: str) -> int:
        if not self.files_decide:
            return 0  # FILE_CHANNEL=closed: decisions come through Temporal only
        decision = await asyncio.to_thread(self.tasks.read_decision, task_id)
        verdict = DECISIONS.get(decision.status or "")
        if verdict is None:
            if decision.status is None and await asyncio.to_thread(self._origin_gone, task_id):
                await self._attention(execution, task_id, "originating_task_missing",
                                      f"originating task {task_id} has no readable task file: "
                                      f"decide with buildctl.py approve/reject or the Web UI")
            return 0
        signal = (BuildPipelineWorkflow.approve if verdict == "approved"
                  else BuildPipelineWorkflow.reject)
        await self._handle(execution).signal(signal, BlockDecision(
            by=decision.by or "task-file",
            reason=decision.reason or f"task {task_id} set to {decision.status}"))
        log.info("block_decision_from_file", extra={"workflow_id": execution.id,
                                                    "decision": decision.status,
                                                    "decided_by": decision.by})
        return 1

    def _origin_gone(self, task_id: str) -> bool:
        try:
            path = self.tasks.find(task_id)
        except DuplicateTaskId:
            return False  # reported as such
        return path is None or self.tasks.header(path) is None

    async def _check_stage(self, execution: WorkflowExecution, task_id: str) -> int:
        try:
            path, status = await asyncio.to_thread(self._look_at_stage, task_id)
        except DuplicateTaskId as err:
            log.warning("duplicate_task_id", extra={"task_id": task_id, "error": str(err)})
            return 0
        if path is None:
            unreadable = await asyncio.to_thread(self.tasks.unreadable_named, task_id)
            if unreadable:  # there, but not readable: never re-dispatched over
                await self._attention(execution, task_id, "stage_file_unreadable",
                                      f"task file {unreadable[0].name} cannot be read (too "
                                      f"large, not YAML or not a task); the stage waits: "
                                      f"fix or remove it, or use complete_activity.py")
                return 0
            return await self._missing_stage(execution, task_id)
        if status not in TERMINAL:
            return 0  # waiting, claimed or parked: the agent (or the operator) has it
        if not self.files_decide:
            await self._attention(execution, task_id, "file_completion_ignored",
                                  f"task {task_id} was set {status} in its file, which "
                                  f"decides nothing here (FILE_CHANNEL=closed): finish the "
                                  f"stage with complete_activity.py")
            return 0
        return await self._finish_through_tooling(execution, task_id, path)

    def _look_at_stage(self, task_id: str) -> tuple[Path | None, str | None]:
        """The stage's live file (made 0600 again if someone loosened it) and its status."""
        path = self.tasks.find(task_id, include_archive=False)
        if path is None:
            return None, None
        self.tasks.tighten(path)
        header = self.tasks.header(path)
        return path, header.status if header else None

    async def _finish_through_tooling(self, execution: WorkflowExecution, task_id: str,
                                      path: Path) -> int:
        """An agent (or operator) finished the stage through the task-queue server."""
        key = (execution.run_id or execution.id, task_id)
        if key in self._reported:
            return 0
        try:
            document = await asyncio.to_thread(load, path)
            token = decode_token(token_text(document) or "")
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("stage_file_unusable", extra={"task_id": task_id, "error": str(err)})
            return 0
        status = document.get("status")
        if _last_actor(document.get("history"), status) == SOURCE_AGENT:
            return 0  # settled by us (complete_activity.py --task-file, or the worker)
        refusal = await self._refusal(execution, document, token)
        if refusal is not None:
            await self._attention(execution, task_id, "stage_file_refused",
                                  f"task {task_id} set {status} in its file, refused: "
                                  f"{refusal}; the stage waits for a real completion")
            return 0
        result = document.get("result") if isinstance(document.get("result"), dict) else {}
        output = str(result.get("output") or "")[:100_000]
        who = str(result.get("completed_by") or "the task queue")[:200]
        handle = self.client.get_async_activity_handle(task_token=token)
        try:
            if status == "completed":
                await handle.complete(BuildPhaseResult(status="success", output=output))
            else:
                await handle.fail(ApplicationError(
                    output or f"stage {status} through the task queue by {who}",
                    type=PHASE_FAILED, non_retryable=True))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            self._reported.add(key)  # finished meanwhile (e.g. by complete_activity.py)
            log.info("stage_already_finished", extra={"workflow_id": execution.id,
                                                      "task_id": task_id})
            return 0
        self._reported.add(key)
        log.info("stage_finished_through_tooling", extra={
            "workflow_id": execution.id, "task_id": task_id, "status": status})
        return 1

    async def _refusal(self, execution: WorkflowExecution, document: dict[str, Any],
                       token: bytes) -> str | None:
        """Why a file's move cannot complete its stage (None: it can). The token must be
        this run's pending stage activity (a token pasted from another build, or a stale
        copy written back after a re-dispatch, is not), and the move must be the stage
        agent's own (the history entry's actor; forgeable by a writer of the directory)."""
        try:
            facts = read_task_token(token)
        except ValueError as err:
            return str(err)
        if (facts.workflow_id, facts.run_id) != (execution.id, execution.run_id):
            return "its task token belongs to another workflow run"
        description = await self._handle(execution).describe()
        pending = {p.activity_id for p in description.raw_description.pending_activities}
        if facts.activity_id not in pending:
            return "its task token is stale (that attempt of the stage is over)"
        status = document.get("status")
        actor = _last_actor(document.get("history"), status)
        allowed = {str(document.get("target_agent")), *self.stage_agents}
        if status == "cancelled" and not self.stage_agents:
            return None  # an operator's move in the tooling; FILE_APPROVERS narrows it
        if actor not in allowed:
            return (f"the move was made by {actor or 'nobody named'}, not by the stage's "
                    f"agent {document.get('target_agent')}")
        return None

    async def _missing_stage(self, execution: WorkflowExecution, task_id: str) -> int:
        dead = await asyncio.to_thread(self.tasks.find_dead_letter, task_id)
        if dead is not None:
            return await self._report_dead_letter(execution, task_id)
        return await self._redispatch_orphan(execution, task_id)

    async def _report_dead_letter(self, execution: WorkflowExecution, task_id: str) -> int:
        key = (execution.run_id or execution.id, f"dead:{task_id}")
        if key in self._reported:
            return 0
        self._reported.add(key)
        note = (f"task {task_id} is in dead-letters/ (the dispatcher gave up routing it); "
                f"requeue it to go on")
        log.warning("stage_dead_lettered", extra={"workflow_id": execution.id,
                                                  "task_id": task_id})
        await self._handle(execution).signal(DispatchingWorkflow.stage_dead_lettered, note)
        await self.deps.notifiers.send(f"[ACTION] {execution.id}: stage task dead-lettered",
                                       note)
        return 1

    async def _redispatch_orphan(self, execution: WorkflowExecution, task_id: str) -> int:
        handle = self._handle(execution)
        try:
            description = await handle.describe()
        except RPCError:
            return 0
        now = datetime.now(UTC)
        for pending in description.raw_description.pending_activities:
            started = pending.last_started_time.ToDatetime(tzinfo=UTC)
            if (pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                    and now - started > ORPHAN_GRACE):
                key = (execution.run_id or execution.id, task_id)
                if time.monotonic() - self._redispatched.get(key, -1e9) < RESIGNAL_AFTER:
                    return 0  # asked already; the workflow may be waiting for a worker
                self._redispatched[key] = time.monotonic()
                await handle.signal(DispatchingWorkflow.redispatch)
                log.warning("orphaned_dispatch_recovered",
                            extra={"workflow_id": execution.id, "task_id": task_id,
                                   "activity": pending.activity_type.name})
                return 1
        return 0
