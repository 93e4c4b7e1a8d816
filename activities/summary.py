"""Stage 9: write the pipeline's summary record under SUMMARY_DIR/<YYYY-MM>/."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from temporalio import activity

from activities.deps import Deps
from models import WorkflowSummary
from safeio.writing import write_private
from taskdir import dump

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SummaryActivities:
    """`write_summary` for our workflows; `summarize_workflow` keeps v0.5's nine arguments."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="write_summary")
    async def write_summary(self, summary: WorkflowSummary) -> str:
        return await self._write(summary)

    @activity.defn(name="summarize_workflow")
    async def summarize_workflow(self, workflow_id: str, build_name: str, started_at: str,
                                 completed_at: str, phases_completed: list[str],
                                 blocks_hit: int, flags_applied: int, plan_path: str,
                                 build_report_path: str) -> str:
        """v0.5's call shape (runs it started); outcome as v0.5 decided it."""
        summary = WorkflowSummary(
            workflow_id=workflow_id, build_name=build_name,
            started=datetime.fromisoformat(started_at),
            completed=datetime.fromisoformat(completed_at),
            phases_completed=phases_completed, blocks_hit=blocks_hit,
            flags_applied=flags_applied, outcome="partial" if blocks_hit else "success",
            plan_path=plan_path, build_report_path=build_report_path or None)
        return await self._write(summary)

    async def _write(self, summary: WorkflowSummary) -> str:
        name = _UNSAFE.sub("_", summary.workflow_id).lstrip(".") or "workflow"
        path = self.deps.config.summary_dir / f"{summary.started:%Y-%m}" / f"{name}.yml"
        record = summary.model_dump(mode="json", exclude_none=True)
        # YAML timestamps, as in the task files (UTC); the rest as plain YAML.
        record["started"] = summary.started.astimezone(UTC)
        record["completed"] = summary.completed.astimezone(UTC)
        data = dump(record)
        await asyncio.to_thread(write_private, path, data, self.deps.config.summary_dir)
        activity.logger.info("summary_written", extra={"path": str(path),
                                                       "outcome": summary.outcome})
        return str(path)
