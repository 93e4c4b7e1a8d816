"""The stage table: one row per stage, every name it goes by, every template complete."""

from __future__ import annotations

import pytest

from activities import instructions
from contract import PIPELINE, PLAN
from models import StageTask, StageTimings
from stages import STAGES, Stage, stage_named

FIELDS = {  # what each stage's dispatch hands its templates (the workflow's payload fields)
    "prefab": {"build_name": "demo", "plan_path": "/plans/demo.md"},
    "implement": {"build_name": "demo", "originating_task_id": "task-0001"},
    "audit": {"build_name": "demo", "plan_path": "/p", "audit_request_path": "/a/request.md",
              "output_dir": "/a"},
    "fixes": {"build_name": "demo", "flags": ["one", "two"]},
    "close": {"build_name": "demo"},
    "phase": {"plan_name": "p", "phase_number": 3, "description": "do  it\nnow",
              "context_refs": ["/r"], "workflow_id": "w"},
}


def test_every_name_is_unique_and_no_kind_is_a_workflow():
    for column in ("kind", "upstream", "activity"):
        values = [getattr(stage, column) for stage in STAGES]
        assert len(set(values)) == len(values), column
    assert not {stage.kind for stage in STAGES} & {PIPELINE, PLAN, "build_plan"}


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.kind)
def test_each_row_is_complete(stage: Stage):
    assert stage_named(stage.kind) is stage_named(stage.upstream) is stage
    assert StageTimings().limit(stage) > 0  # its timeout names a real setting
    summary, text = instructions.texts(stage, FIELDS[stage.kind])
    assert "{" not in summary and "{" not in text
    assert text.endswith(f"\"<{stage.output_hint}>\", with TASK_TOKEN = payload.task_token.)")


def test_an_in_flight_stage_named_the_old_way_is_read_as_its_kind():
    """0.9 workers scheduled dispatch_stage with the upstream name as the kind."""
    task = StageTask(task_id="t" * 8, kind="build_plan", target_agent="dev", build="b",
                     fields={})
    assert task.kind == "implement"
    with pytest.raises(ValueError, match="unknown stage 'deploy'"):
        StageTask(task_id="t" * 8, kind="deploy", target_agent="dev", build="b", fields={})


def test_the_texts_are_the_upstream_wording():
    assert instructions.texts(stage_named("fixes"), FIELDS["fixes"])[0] == (
        "Apply security flag fixes for build 'demo' (2 items)")
    summary, text = instructions.texts(stage_named("phase"), FIELDS["phase"])
    assert summary == "Build phase 3: do it now"
    assert text.startswith(
        "Build phase 3 of plan 'p': do  it\nnow\nContext to read first:\n- /r\nWhen done, run: ")
    assert stage_named("phase").task_key(3) == "execute_build_phase/3"
