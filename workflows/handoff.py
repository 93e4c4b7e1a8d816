"""How a run hands over from one agent stage to the next: a finished stage's file is settled
at the end of the workflow step, carried by the next stage's dispatch on the same host (one
activity and one memo command fewer per hand-off), else by a settle_task of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.lifecycle import TaskLifecycle
    from contract import Memo
    from models import TaskSettlement


def finished_quietly(task: asyncio.Future[Any],
                     ignored: type[BaseException] | None = None) -> bool:
    """Done, and awaiting it would neither wait nor raise (but IGNORED, which the awaiter
    suppresses): forgetting it changes nothing a later `settled` does."""
    if not task.done() or task.cancelled():
        return False
    error = task.exception()
    return error is None or (ignored is not None and isinstance(error, ignored))


class Handoff:
    """Settlements and the memo's clearing wait for the end of the workflow step: the next
    stage's dispatch on the same host carries the settlement, and its memo replaces the last;
    a settlement nobody carried is a settle_task of its own (awaited by `settled`)."""

    def __init__(self) -> None:
        # The run's BLOCK_CHECK_INTERVAL once its settings are loaded (held here only: the
        # workflow's host checks and this object's settlement bounds both read it).
        self.recheck = 30.0
        self._settling: list[workflow.ActivityHandle[bool]] = []
        self._draining = False  # `settled` is going through `_settling`: leave it as it is
        self._step_end: list[asyncio.Task[None]] = []
        self._unsettled: list[tuple[TaskSettlement, str | None]] = []
        self._memo_task: str | None = None  # Memo.DISPATCH as last upserted
        self._memo_queue: str | None = None

    def _at_step_end(self, action: Callable[[], None]) -> None:
        """Run ACTION once this workflow step has issued its next command: the workflow's
        event loop runs ready tasks, in order, only when the running coroutine yields."""
        async def later() -> None:
            action()

        task = asyncio.create_task(later())
        self._step_end.append(task)
        task.add_done_callback(self._drop_step)

    def _drop_step(self, task: asyncio.Future[Any]) -> None:
        """A finished action is dropped as it finishes (a parked run would keep its last ones):
        `settled` only waits for what is still to run, or would raise."""
        if finished_quietly(task):
            self._step_end = [kept for kept in self._step_end if kept is not task]

    def show_dispatch(self, task_id: str, queue: str | None) -> None:
        routed: dict[str, Any] = {Memo.QUEUE: queue} if queue else {}
        if self._memo_queue and not queue:
            routed = {Memo.QUEUE: None}  # the last stage was routed; this one is not
        workflow.upsert_memo({Memo.DISPATCH: task_id, **routed})
        self._memo_task, self._memo_queue = task_id, queue

    def clear_dispatch(self, task_id: str) -> None:
        def clear() -> None:
            if self._memo_task == task_id:  # no next stage took over
                workflow.upsert_memo({Memo.DISPATCH: None, Memo.QUEUE: None}
                                     if self._memo_queue else {Memo.DISPATCH: None})
                self._memo_task = self._memo_queue = None

        self._at_step_end(clear)

    def carry(self, queue: str | None) -> TaskSettlement | None:
        """The settlement waiting for this step's next command, if it is on QUEUE."""
        for entry in self._unsettled:
            if entry[1] == queue:
                self._unsettled.remove(entry)
                return entry[0]
        return None

    def settle(self, settlement: TaskSettlement, queue: str | None) -> None:
        entry = (settlement, queue)
        self._unsettled.append(entry)

        def unless_carried() -> None:
            if entry in self._unsettled:
                self._unsettled.remove(entry)
                self._start(settlement, queue)

        self._at_step_end(unless_carried)

    def _start(self, settlement: TaskSettlement, queue: str | None) -> None:
        # Book-keeping on a host that is down must not hold the run: the host's sweep
        # settles the file when it is back (sweeper: stale stage files).
        bound = (timedelta(seconds=max(10.0, 4 * self.recheck))
                 if queue is not None else None)
        handle = workflow.start_activity_method(
            TaskLifecycle.settle_task, settlement, schedule_to_close_timeout=bound,
            task_queue=queue, start_to_close_timeout=timedelta(minutes=1),
            heartbeat_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"task {settlement.task_id} → {settlement.status}")
        self._settling.append(handle)
        handle.add_done_callback(self._forget)

    def _forget(self, handle: asyncio.Future[Any]) -> None:
        """A finished settlement's handle keeps its input (the agent's output) as long as the
        run is cached: drop it, unless `settled` is going through the list or must see it."""
        if not self._draining and finished_quietly(handle, ActivityError):
            self._settling = [kept for kept in self._settling if kept is not handle]

    async def settled(self) -> None:
        """Wait for the step-end actions, then every background task-file move (a failed one
        is only logged)."""
        await asyncio.gather(*self._step_end)
        self._step_end.clear()
        self._draining = True
        try:
            for handle in self._settling:
                with contextlib.suppress(ActivityError):
                    await handle
        finally:
            self._draining = False
        self._settling.clear()
