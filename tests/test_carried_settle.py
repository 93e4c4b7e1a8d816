"""A dispatch that carries the last stage's settlement (lean runs) writes its own file even
when that settlement cannot be made, and settles the last file when it can."""

from __future__ import annotations

import pytest
import yaml
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities.deps import Deps
from activities.dispatch import StageDispatch
from config import load_config
from models import StageTask, TaskSettlement
from taskdir import TaskDirectory, TaskSpec
from testbed.helpers import files_of_type


def stage(settle: TaskSettlement | None) -> StageTask:
    return StageTask(task_id="11111111-next-stage", kind="build_plan", target_agent="dev",
                     build="demo", fields={"build_name": "demo", "originating_task_id": "o"},
                     settle=settle)


async def dispatch(env: dict[str, str], task: StageTask) -> None:
    with pytest.raises(activity._CompleteAsyncError):  # the stage now waits for its agent
        await ActivityEnvironment().run(StageDispatch(Deps.for_config(load_config(env)))
                                        .dispatch_stage, task)


async def test_the_carried_settlement_moves_the_last_file(env, dirs):
    last = TaskDirectory(dirs["tasks"]).dispatch(
        TaskSpec(task_id="00000000-last-stage", target_agent="claudebox",
                 task_type="build_prefab", summary="prefab"), "dA==")
    await dispatch(env, stage(TaskSettlement(task_id="00000000-last-stage",
                                             status="completed", note="done", by="claudebox")))
    assert yaml.safe_load(last.read_text())["status"] == "completed"
    assert [d["status"] for d in files_of_type(dirs["tasks"], "build_plan")] == ["submitted"]


async def test_a_settlement_that_fails_does_not_fail_the_dispatch(env, dirs, caplog):
    tasks = TaskDirectory(dirs["tasks"])
    first = tasks.dispatch(TaskSpec(task_id="00000000-last-stage", target_agent="claudebox",
                                    task_type="build_prefab", summary="prefab"), "dA==")
    (dirs["tasks"] / "20000101-000000-00000000.yml").write_bytes(first.read_bytes())  # a twin
    await dispatch(env, stage(TaskSettlement(task_id="00000000-last-stage",
                                             status="completed", note="done")))
    assert [d["status"] for d in files_of_type(dirs["tasks"], "build_plan")] == ["submitted"]
    assert any(r.getMessage().startswith("task_move_failed") for r in caplog.records)
    assert yaml.safe_load(first.read_text())["status"] == "submitted"  # a twin decides nothing
