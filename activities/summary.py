"""Stage 9: write a pipeline's (or a plan's) summary record under SUMMARY_DIR/<YYYY-MM>/."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC

from temporalio import activity

from activities.deps import Deps
from models import PlanSummary, WorkflowSummary
from safeio.writing import write_private
from taskdir import dump

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SummaryActivities:
    """`write_summary` for our workflows (v0.5's nine-argument call: activities/legacy.py)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="write_summary")
    async def write_summary(self, summary: WorkflowSummary) -> str:
        return await self.write(summary)

    @activity.defn(name="write_plan_summary")
    async def write_plan_summary(self, summary: PlanSummary) -> str:
        return await self.write(summary)

    async def write(self, summary: WorkflowSummary | PlanSummary) -> str:
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
