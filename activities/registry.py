"""Every activity the worker registers, built from the shared Deps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.agent_stages import AgentStages
from activities.blocks import BlockActivities
from activities.deps import Deps
from activities.lifecycle import TaskLifecycle
from activities.settings import SettingsActivities
from activities.summary import SummaryActivities
from activities.triage_stage import TriageStage


def all_activities(deps: Deps, index_builds: bool) -> list[Callable[..., Any]]:
    stages = AgentStages(deps)
    blocks = BlockActivities(deps)
    summaries = SummaryActivities(deps)
    lifecycle = TaskLifecycle(deps)
    return [
        stages.dispatch_stage, stages.prefab_scaffolding, stages.implement_build,
        stages.request_security_audit, stages.apply_flag_fixes, stages.close_build,
        stages.execute_build_phase, TriageStage(deps).process_triage_output,
        blocks.notify_blocks, blocks.wait_for_block_resolution, blocks.check_block_status,
        summaries.write_summary, summaries.summarize_workflow,
        lifecycle.settle_task, lifecycle.mark_task_cancelled,
        SettingsActivities(deps.config, index_builds).load_stage_settings,
    ]
