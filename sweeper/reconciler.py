"""The reconciler between the shared task directory and Temporal, one pass per interval.

For every running pipeline or plan on our task queue it reads the memo (which task file the
run waits on) and hands the file to the room that repairs its kind of disagreement:
`decisions` (a parked build's originating task), `finished` (a stage file finished through
the tooling), `stale` (a host's file no run waits on), `odd` (a file gone, unreadable or
dead-lettered, loosened permissions). `turn` and `reach` decide whether a pass runs at all.

Each worker sweeps the stages routed to its own task queue (a host worker: its host's; the
main worker: unrouted stages and parked builds). Workers sharing a directory take turns by
a flock, and every action is idempotent, so any number of them may run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecution

from activities.deps import Deps
from contract import RUNNING_BUILDS_QUERY, Memo
from sweeper.decisions import Decisions
from sweeper.finished import FinishedStages
from sweeper.notes import Notes
from sweeper.odd import OddEntries
from sweeper.reach import Reach
from sweeper.stale import StaleStages
from sweeper.turn import Turns
from taskdir import DuplicateTaskId
from taskdir.vocabulary import TERMINAL

log = logging.getLogger("sweeper")
LIST_TIMEOUT = timedelta(seconds=30)  # a pass's listing of running builds


class Sweeper:
    """One pass per interval over the running builds, for the stages on our queue."""

    def __init__(self, client: Client, deps: Deps) -> None:
        config = deps.config
        self.client, self.tasks = client, deps.tasks
        self.interval = config.timings.block_check_interval
        self.queue, self.main = config.task_queue, config.role == "main"
        self.builds_queue = config.build_queue
        self.files_decide = config.file_channel == "open"
        self.query = RUNNING_BUILDS_QUERY.format(task_queue=config.build_queue)
        self.notes = Notes(client)
        self.reach = Reach(client, self.query, config.client.address)
        self.turns = Turns(deps.tasks)
        self.decisions = Decisions(deps.tasks, self.notes, self.files_decide)
        self.finished = FinishedStages(client, self.notes, frozenset(config.file_approvers))
        self.stale = StaleStages(client, deps.tasks, self.interval)
        self.odd = OddEntries(deps, self.notes)

    async def run_forever(self) -> None:
        """Sweep every interval until cancelled; a failed pass is retried next interval."""
        while True:
            try:
                if await self.reach.reachable():
                    await self.sweep()
            except Exception as err:
                log.warning("sweep_failed", extra={"error": f"{type(err).__name__}: {err}"[:300]})
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Return how many workflows were acted on (0 when another worker has the turn)."""
        with self.tasks.sweep_turn() as mine:
            self.turns.note(mine)
            return await self._pass() if mine else 0

    async def _pass(self) -> int:
        """Every running build once, then the directory's own repairs."""
        acted = 0
        self.odd.forget_old()
        current: set[str] = set()
        trouble = await asyncio.to_thread(self.tasks.locks.trouble)
        async for execution in self.client.list_workflows(self.query, page_size=1000,
                                                          rpc_timeout=LIST_TIMEOUT):
            acted += await self._build(execution, trouble, current)
        await self.odd.tighten()
        if not self.main:  # a host's settlements may have been given up while it was away
            acted += await self.stale.settle(current)
        return acted

    async def _build(self, execution: WorkflowExecution, trouble: str | None,
                     current: set[str]) -> int:
        """One build's file, on its own: it never stops the others'. CURRENT gains the stage
        files a run waits on."""
        memo = await execution.memo()
        try:
            if trouble is not None and (self.main or self._ours(memo.get(Memo.QUEUE))):
                await self.notes.attention(execution, ".locks", "task_dir_entry_odd",
                                           f"task directory: {trouble}")
            if memo.get(Memo.AWAIT) and self.main:  # originating tasks: the main host
                return await self.decisions.check(execution, str(memo[Memo.AWAIT]))
            if memo.get(Memo.DISPATCH) and self._ours(memo.get(Memo.QUEUE)):
                current.add(str(memo[Memo.DISPATCH]))
                return await self._stage(execution, str(memo[Memo.DISPATCH]))
        except Exception as err:
            task_id = str(memo.get(Memo.AWAIT) or memo.get(Memo.DISPATCH))
            await self.notes.attention(execution, task_id, "sweep_item_failed",
                                       f"task {task_id} could not be handled: "
                                       f"{type(err).__name__}: {err}"[:400])
        return 0

    def _ours(self, stage_queue: object) -> bool:
        """Whether the stage's file is in our directory: it was routed to our queue."""
        return (stage_queue or self.builds_queue) == self.queue

    async def _stage(self, execution: WorkflowExecution, task_id: str) -> int:
        """The stage file a run waits on, to the room for what it shows."""
        try:
            path, status = await asyncio.to_thread(self._look_at_stage, task_id)
        except DuplicateTaskId as err:
            log.warning("duplicate_task_id", extra={"task_id": task_id, "error": str(err)})
            return 0
        if path is None:
            return await self.odd.missing(execution, task_id)
        if status not in TERMINAL:
            return 0  # waiting, claimed or parked: the agent (or the operator) has it
        if not self.files_decide:
            await self.notes.attention(
                execution, task_id, "file_completion_ignored",
                f"task {task_id} was set {status} in its file, which decides nothing here "
                f"(FILE_CHANNEL=closed): finish the stage with complete_activity.py")
            return 0
        return await self.finished.finish(execution, task_id, path)

    def _look_at_stage(self, task_id: str) -> tuple[Path | None, str | None]:
        """The stage's live file (made 0600 again if someone loosened it) and its status."""
        path = self.tasks.find(task_id, include_archive=False)
        if path is None:
            return None, None
        self.tasks.tighten(path)
        header = self.tasks.header(path)
        return path, header.status if header else None
