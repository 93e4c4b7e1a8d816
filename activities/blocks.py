"""Stage 6 and 7 activities: notify about blocks, mark and watch the originating task file."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.deps import Deps
from exceptions import UnsafePathError
from models import BlockCheck, BlockNotice, NoticeResult
from safeio.inert import code, one_line
from taskdir import UNREADABLE, Decision
from taskdir.waiting import patiently


async def _heartbeat_every(seconds: float, *details: object) -> None:
    """Tell the server this attempt is alive while slow notification backends run."""
    while True:
        activity.heartbeat(*details)
        await asyncio.sleep(seconds)


NOTIFIED_BLOCKS, NOTIFIED_CHARS = 10, 300  # what one notification lists of a set of blocks


def notice_text(notice: BlockNotice, workflow_id: str | None = None) -> tuple[str, str]:
    """One message for one set of blocks: the title, then the first blocks in their own words
    (each a code span: inert where Markdown is rendered, bounded), how many more, and where to
    decide (the workflow id buildctl takes)."""
    total = len(notice.blocks)
    title = f"[ACTION] {notice.build_name}: {total} security block(s) need your decision"
    lines = [f"{number}. {code(block, NOTIFIED_CHARS)}"
             for number, block in enumerate(notice.blocks[:NOTIFIED_BLOCKS], start=1)]
    if total > NOTIFIED_BLOCKS:
        lines.append(f"… and {total - NOTIFIED_BLOCKS} more")
    if notice.flags:
        lines.append(f"{notice.flags} flag(s) go to the build's agent to fix")
    if notice.triage_file:
        lines.append(f"Triage file: {code(notice.triage_file, 1000)}")
    target = workflow_id or notice.build_name
    lines.append(f"Decide: buildctl.py status/approve/reject {target} "
                 f"(or set task {notice.task_id} to approved/cancelled)")
    return title, "\n".join(lines)


def input_required_note(build_name: str, blocks: list[str]) -> str:
    """The originating task's history note: what the operator decides, in the blocks' words."""
    listed = " | ".join(one_line(block, 200) for block in blocks[:5])
    more = f" | … and {len(blocks) - 5} more" if len(blocks) > 5 else ""
    return (f"{len(blocks)} security block(s) on build '{build_name}' need an operator "
            f"decision: {listed}{more}. Approve to continue (or cancel to reject), or use the "
            f"approve/reject signal")[:2000]


class BlockActivities:
    """notify_findings (v0.5's runs, and ours from before `operator-decision-0.11`:
    notify_blocks) and the one-shot status check of a parked build's originating task."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="notify_blocks")
    async def notify_blocks(self, build_name: str, task_id: str, blocks: list[str]) -> None:
        """Runs on the older path: one bounded message, then the originating task is marked.
        Returns nothing: v0.5 workflows decode this result as no value."""
        title, message = notice_text(BlockNotice(build_name=build_name, task_id=task_id,
                                                 blocks=blocks), activity.info().workflow_id)
        keep_alive = asyncio.create_task(_heartbeat_every(10.0))
        try:
            await self.deps.notifiers.send(title, message)
            await patiently(self._mark_input_required, build_name, task_id, len(blocks),
                            input_required_note(build_name, blocks))
        finally:
            keep_alive.cancel()

    @activity.defn(name="notify_findings")
    async def notify_findings(self, notice: BlockNotice) -> NoticeResult:
        """The originating task marked, then one message per backend for one set of blocks (a
        retry skips the backends that took it: they are kept in the heartbeat)."""
        done = list(notice.skip)
        for details in activity.info().heartbeat_details[-1:]:
            done += [name for name in details if isinstance(name, str)]
        title, message = notice_text(notice, activity.info().workflow_id)
        keep_alive = asyncio.create_task(_heartbeat_every(10.0, done))
        try:
            if notice.mark_task:  # first: the park entry a file decision must follow
                await patiently(self._mark_input_required, notice.build_name,
                                notice.task_id, len(notice.blocks),
                                input_required_note(notice.build_name, notice.blocks))
            results = await self.deps.notifiers.send_each(title, message, skip=done)
            done += [name for name, error in results.items() if error is None]
            activity.heartbeat(done)
        finally:
            keep_alive.cancel()
        return NoticeResult(delivered=done, failed={name: error for name, error
                                                    in results.items() if error})

    def _mark_input_required(self, build_name: str, task_id: str, total: int,
                             note: str | None = None) -> None:
        """The originating task waits for the operator (input-required, or the tooling's
        pending-approval in the task-queue vocabulary)."""
        tasks = self.deps.tasks
        note = note or (f"{total} security block(s) on build '{build_name}' need an operator "
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

