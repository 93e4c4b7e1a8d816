"""Replay recorded histories: a change that would break running workflows fails here.

`histories/*.json` are ours (re-record deliberately with `python -m tests.record_histories`);
`histories/v0.5/` were recorded from the original v0.5 worker and must replay for ever;
`histories/0.x/` are runs a 0.x release started: a 1.0 worker names them and does not go on.
Each history replays on production's runner and under the strict sandbox (tests/sandbox.py),
which fails on a clock read, random number, environment read or I/O anywhere on the path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from connection.converter import DATA_CONVERTER
from contract import Marker
from tests.sandbox import replay_in_sandbox
from worker import WORKFLOW_RUNNER, WORKFLOWS

ROOT = Path(__file__).parent / "histories"
OURS = sorted(ROOT.glob("*.json"))
V05 = sorted((ROOT / "v0.5").glob("*.json"))
EARLIER = sorted((ROOT / "0.x").glob("*.json"))


def test_histories_are_present():
    names = {path.stem for path in OURS}
    assert {"pipeline-clean", "pipeline-flags", "pipeline-blocks-approved",
            "pipeline-blocks-rejected", "pipeline-cancelled", "plan", "pipeline-routed",
            "pipeline-triage-refused", "pipeline-liveness", "pipeline-failed",
            "pipeline-refused-corrected"} <= names
    assert len(V05) == 11 and len(EARLIER) == 2


@pytest.mark.parametrize("path", OURS + V05,
                         ids=[f"{p.parent.name}/{p.stem}" for p in OURS + V05])
async def test_replay(path: Path):
    """On production's (unsandboxed) runner, as the worker replays."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER,
                        workflow_runner=WORKFLOW_RUNNER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.slow  # the sandbox's import cost per run: kept out of the quick check
@pytest.mark.parametrize("path", OURS + V05,
                         ids=[f"{p.parent.name}/{p.stem}" for p in OURS + V05])
async def test_replay_in_the_sandbox(path: Path):
    """Under the SDK's sandbox with our modules inside it: nothing non-deterministic runs."""
    assert await replay_in_sandbox(path) is None


@pytest.mark.parametrize("path", EARLIER, ids=[p.stem for p in EARLIER])
async def test_a_run_a_0x_release_started_is_named_not_continued(path: Path):
    """Upgrading to 1.0 drains 0.x's runs first; one that is left is named (its workflow task
    fails with the reason, visible in the Web UI and the worker's log), never taken for a
    v0.5 run or continued on 1.0's path."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER,
                        workflow_runner=WORKFLOW_RUNNER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert "was started by a 0.x release" in str(result.replay_failure)


def scheduled(path: Path) -> list[str]:
    events = WorkflowHistory.from_json(path.stem, path.read_text()).events
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
            if e.HasField("activity_task_scheduled_event_attributes")]


def test_runs_hand_over_before_settling():
    """The next stage's dispatch settles the finished stage's file when both are on one host
    (no settle_task of its own), else settle_task follows the next command."""
    clean = scheduled(ROOT / "pipeline-clean.json")
    assert clean[:4] == ["dispatch_stage"] * 3 + ["process_triage_output"]
    routed = scheduled(ROOT / "pipeline-routed.json")
    assert routed.count("dispatch_stage") == 5 and "settle_task" in routed


def patches(path: Path) -> list[str]:
    """The ids of the patch markers a recorded history carries, in order."""
    events = WorkflowHistory.from_json(path.stem, path.read_text()).events
    return [json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0]
                       .data)["id"]
            for e in events if e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_patch"]


def test_a_new_run_records_one_marker_as_its_first_command():
    """1.0 records one marker in every run it starts, whichever paths the run takes."""
    for path in OURS:
        assert patches(path) == [Marker.RELEASE], path.name
        events = WorkflowHistory.from_json(path.stem, path.read_text()).events
        first_command = next(e for e in events if e.event_type > 7)  # after the first task
        assert first_command.marker_recorded_event_attributes.marker_name == "core_patch"
    refused = scheduled(ROOT / "pipeline-triage-refused.json")
    assert refused.count("process_triage_output") == 1  # refused, not retried
    assert "notify_findings" in refused and refused.count("dispatch_stage") == 3  # no close
    assert all(not patches(path) for path in V05)


def test_blocks_are_notified_before_fixes_and_each_set_is_decided():
    """notify_findings is scheduled right after triage, beside the fixes stage; a corrected
    triage file's blocks are notified and awaited again; failures leave summaries."""
    events = WorkflowHistory.from_json("approved", (ROOT / "pipeline-blocks-approved.json")
                                       .read_text()).events
    types = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
             for e in events if e.HasField("activity_task_scheduled_event_attributes")}
    done = [types[e.activity_task_completed_event_attributes.scheduled_event_id]
            for e in events if e.HasField("activity_task_completed_event_attributes")
            and types[e.activity_task_completed_event_attributes.scheduled_event_id]
            in ("dispatch_stage", "notify_findings")]
    assert done[3:5] == ["notify_findings", "dispatch_stage"]  # notified while fixes ran
    corrected = scheduled(ROOT / "pipeline-refused-corrected.json")
    assert corrected.count("notify_findings") == 2
    assert corrected.count("check_block_status") == 2
    assert corrected.count("process_triage_output") == 2
    assert scheduled(ROOT / "pipeline-failed.json")[-1] == "write_summary"
    assert scheduled(ROOT / "pipeline-cancelled.json")[-1] == "write_summary"
    assert scheduled(ROOT / "plan.json")[-1] == "write_plan_summary"


def test_a_silent_agents_stage_is_offered_again_in_the_recorded_run():
    """AGENT_HEARTBEAT_TIMEOUT recorded with the run's settings: the prefab stage's first
    attempt timed out on its heartbeat and a second dispatch_stage offered it again."""
    events = WorkflowHistory.from_json("liveness", (ROOT / "pipeline-liveness.json")
                                       .read_text()).events
    timed_out = [e for e in events if e.HasField("activity_task_timed_out_event_attributes")]
    assert len(timed_out) == 1
    assert scheduled(ROOT / "pipeline-liveness.json")[:2] == ["dispatch_stage"] * 2



