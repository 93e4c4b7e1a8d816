"""summarize_workflow: write the pipeline's summary record under SUMMARY_DIR/<YYYY-MM>/."""

from __future__ import annotations

import asyncio
import re

import yaml
from temporalio import activity

from activities.deps import Deps
from files import write_private
from models import WorkflowSummary
from taskfiles import iso

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class SummaryActivities:
    """Stage 9."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="summarize_workflow")
    async def summarize_workflow(self, summary: WorkflowSummary) -> str:
        name = _UNSAFE.sub("_", summary.workflow_id).lstrip(".") or "workflow"
        path = self.deps.config.summary_dir / f"{summary.started:%Y-%m}" / f"{name}.yml"
        record = summary.model_dump(mode="json", exclude_none=True)
        record["started"] = iso(summary.started)
        record["completed"] = iso(summary.completed)
        data = yaml.safe_dump(record, sort_keys=False, allow_unicode=True).encode("utf-8")
        await asyncio.to_thread(write_private, path, data)
        activity.logger.info("summary_written", extra={"path": str(path),
                                                       "outcome": summary.outcome})
        return str(path)
