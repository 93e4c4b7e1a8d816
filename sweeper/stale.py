"""Stale stage files: a host's open file that no run waits on any more is settled as its
activity ended (the run's settlement was bounded and gave up while the host was away)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from connection.task_token import TokenFacts, read_task_token
from contract import FAILED, SUCCESS, decode_token, token_text
from sweeper.reach import outage
from taskdir import TaskDirectory, load
from taskdir.locks import TaskLocked
from taskdir.vocabulary import CANCELLED, FINAL_STATUS, TERMINAL

log = logging.getLogger("sweeper")
STALE_AFTER = 10.0  # seconds a stage file must be untouched before it can count as stale
_ENDINGS = (  # the history event that ended a stage's activity -> its file's final status
    ("activity_task_completed_event_attributes", FINAL_STATUS[SUCCESS], "completed"),
    ("activity_task_failed_event_attributes", FINAL_STATUS[FAILED], "failed"),
    ("activity_task_timed_out_event_attributes", FINAL_STATUS[FAILED], "timed out"),
    ("activity_task_canceled_event_attributes", CANCELLED, "was cancelled"),
)
_RUN_CLOSED = {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW}


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
    return (CANCELLED, note.format("ended with its run")) if closed else None


class StaleStages:
    """A host's open stage files nobody waits on; each settled (or found unusable) once."""

    def __init__(self, client: Client, tasks: TaskDirectory, interval: float) -> None:
        self.client, self.tasks, self.interval = client, tasks, interval
        self._done: set[str] = set()  # stage files settled (or unusable)

    async def settle(self, current: set[str]) -> int:
        """Settle our open stage files that no run (CURRENT: the ones waited on) waits on."""
        acted = 0
        for path, header in await asyncio.to_thread(self.tasks.stage_files):
            if header.status in TERMINAL or header.id in current or header.id in self._done:
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
        self._done.add(task_id)
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
        self._done.add(task_id)
        try:
            await asyncio.to_thread(self.tasks.finish, task_id, status, note, path=path)
        except TaskLocked:
            self._done.discard(task_id)  # someone holds it: next pass
            return 0
        log.info("stale_stage_settled", extra={"task_id": task_id, "status": status})
        return 1
