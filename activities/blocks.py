"""Stage 6 and 7 activities: notify about blocks, mark and watch the originating task file."""

from __future__ import annotations

import asyncio

import yaml
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from exceptions import UnsafePathError
from models import BlockCheck
from taskdir import Decision
from taskdir.vocabulary import DECISIONS
from taskdir.waiting import patiently


async def _heartbeat_every(seconds: float) -> None:
    """Tell the server this attempt is alive while slow notification backends run."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(seconds)


class BlockActivities:
    """notify_blocks, v0.5's blocking wait, and our workflow's one-shot status check."""

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
        except (ValueError, yaml.YAMLError, UnsafePathError, OSError) as err:
            activity.logger.warning("originating_task_unreadable",
                                    extra={"task_id": task_id, "error": str(err)[:200]})
            return
        if not found:
            activity.logger.warning("originating_task_missing", extra={"task_id": task_id})

    @activity.defn(name="wait_for_block_resolution")
    async def wait_for_block_resolution(self, build_name: str, task_id: str) -> None:
        """v0.5's contract: return (nothing) only once the originating task is `approved`.

        Polls the task file and heartbeats until then; a refusal ends the attempt with a
        non-retryable error instead of ever letting the build close without approval.
        """
        interval = self.deps.config.timings.block_check_interval
        while True:
            activity.heartbeat()
            status = (await self._credible(task_id)).status
            if status == "approved":
                activity.logger.info("block_wait_approved", extra={"task_id": task_id})
                return
            if DECISIONS.get(status or "") == "rejected":
                raise ApplicationError(
                    f"Build {build_name}: originating task {task_id} was set to {status}",
                    type="BuildRejected", non_retryable=True)
            await asyncio.sleep(interval)

    @activity.defn(name="check_block_status")
    async def check_block_status(self, task_id: str) -> BlockCheck:
        """Read the originating task's status once; the workflow does the waiting."""
        decision = await self._credible(task_id)
        return BlockCheck(status=decision.status, by=decision.by, reason=decision.reason)

    async def _credible(self, task_id: str) -> Decision:
        if self.deps.config.file_channel == "closed":
            return Decision(None)  # files decide nothing: signal, update, buildctl, Web UI
        return await asyncio.to_thread(self.deps.tasks.read_decision, task_id)

