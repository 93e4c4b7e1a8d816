"""Every activity a worker registers, by role, built from the shared Deps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.client import Client

from activities.blocks import BlockActivities
from activities.deps import Deps
from activities.dispatch import StageDispatch
from activities.legacy import legacy_activities
from activities.lifecycle import TaskLifecycle
from activities.queues import QueueActivities
from activities.stage_settings import SettingsActivities
from activities.summary import SummaryActivities
from activities.triage_stage import TriageStage


def host_activities(deps: Deps) -> list[Callable[..., Any]]:
    """What touches a host's own task and audit directories: a stage's file and triage."""
    lifecycle = TaskLifecycle(deps)
    return [StageDispatch(deps).dispatch_stage, TriageStage(deps).process_triage_output,
            lifecycle.settle_task, lifecycle.mark_task_cancelled]


def main_activities(deps: Deps, client: Client, index_builds: bool) -> list[Callable[..., Any]]:
    """The main worker's: the host ones (unmapped agents live here), v0.5's names, blocks
    and the originating task, summaries, and the local activities of every run."""
    blocks = BlockActivities(deps)
    summaries = SummaryActivities(deps)
    queues = QueueActivities(client)
    return [
        *host_activities(deps),
        *legacy_activities(deps),
        blocks.notify_blocks, blocks.notify_findings, blocks.check_block_status,
        summaries.write_summary, summaries.write_plan_summary,
        SettingsActivities(deps.config, index_builds).load_stage_settings,
        queues.host_queue_state,
    ]
