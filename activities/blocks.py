"""Stage 6 and 7 activities: notify about blocks, mark and watch the originating task file."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.deps import Deps
from exceptions import UnsafePathError
from models import BlockCheck
from taskdir import UNREADABLE, Decision
from taskdir.waiting import patiently


async def _heartbeat_every(seconds: float) -> None:
    """Tell the server this attempt is alive while slow notification backends run."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(seconds)


class BlockActivities:
    """notify_blocks and the one-shot status check of a parked build's originating task."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="notify_blocks")
    async def notify_blocks(self, build_name: str, task_id: str, blocks: list[str]) -> None:
        """Returns nothing: v0.5 workflows decode this result as no value."""
        total = len(blocks)
        keep_alive = asyncio.create_task(_heartbeat_every(10.0))
        try:
            for index, block in enumerate(blocks, start=1):
                title = f"[ACTION] {build_name}: block {index}/{total} needs review"
                await self.deps.notifiers.send(title, " ".join(block.split())[:2000])
            await patiently(self._mark_input_required, build_name, task_id, total)
        finally:
            keep_alive.cancel()

    def _mark_input_required(self, build_name: str, task_id: str, total: int) -> None:
        """The originating task waits for the operator (input-required, or the tooling's
        pending-approval in the task-queue vocabulary)."""
        tasks = self.deps.tasks
        note = (f"{total} security block(s) on build '{build_name}' need an operator "
                f"decision: approve to continue (or cancel to reject), or use the "
                f"approve/reject signal")
        try:
            found = tasks.set_status(task_id, tasks.style.awaiting_decision, note,
                                     include_archive=True)  # as v0.5: live or archived
        except (*UNREADABLE, UnsafePathError) as err:
            activity.logger.warning("originating_task_unreadable",
                                    extra={"task_id": task_id, "error": str(err)[:200]})
            return
        if not found:
            activity.logger.warning("originating_task_missing", extra={"task_id": task_id})

    @activity.defn(name="check_block_status")
    async def check_block_status(self, task_id: str) -> BlockCheck:
        """Read the originating task's status once; the workflow does the waiting."""
        decision = await self.credible_decision(task_id)
        return BlockCheck(status=decision.status, by=decision.by, reason=decision.reason)

    async def credible_decision(self, task_id: str) -> Decision:
        """What the originating task file decides, when files may decide (FILE_CHANNEL)."""
        if self.deps.config.file_channel == "closed":
            return Decision(None)  # files decide nothing: signal, update, buildctl, Web UI
        return await asyncio.to_thread(self.deps.tasks.read_decision, task_id)

