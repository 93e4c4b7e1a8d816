"""Replay recorded histories: a change that would break running workflows fails here.

`histories/*.json` are ours (re-record deliberately with `python -m tests.record_histories`);
`histories/0.7/` are the shape before the lean hand-off (runs without its marker);
`histories/0.8/` the routed pipeline before host liveness (0.9: probes until the stage is taken);
`histories/0.9/` every run as 0.9 started it (one marker per release, before `lean-start-0.10`);
`histories/0.10/` every run as 0.10 started it (before `operator-decision-0.11`);
`histories/v0.5/` were recorded from the original v0.5 worker and must replay for ever.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from connection.converter import DATA_CONVERTER
from worker import WORKFLOW_RUNNER, WORKFLOWS

ROOT = Path(__file__).parent / "histories"
OURS = [path for shape in ("", "0.7", "0.8", "0.9", "0.10")
        for path in sorted((ROOT / shape).glob("*.json"))]
V05 = sorted((ROOT / "v0.5").glob("*.json"))


def test_histories_are_present():
    names = {path.stem for path in ROOT.glob("*.json")}
    assert {"pipeline-clean", "pipeline-flags", "pipeline-blocks-approved",
            "pipeline-blocks-rejected", "pipeline-cancelled", "plan", "pipeline-routed",
            "pipeline-triage-refused", "pipeline-liveness"} <= names
    assert {"pipeline-failed", "pipeline-refused-corrected"} <= names
    assert len(V05) == 11 and len(list((ROOT / "0.7").glob("*.json"))) == 7
    earlier = {path.stem for path in (ROOT / "0.10").glob("*.json")}
    assert {path.stem for path in (ROOT / "0.9").glob("*.json")} == earlier < names
    assert [p.stem for p in (ROOT / "0.8").glob("*.json")] == ["pipeline-routed"]


@pytest.mark.parametrize("path", OURS + V05,
                         ids=[f"{p.parent.name}/{p.stem}" for p in OURS + V05])
async def test_replay(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER,
                        workflow_runner=WORKFLOW_RUNNER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def scheduled(path: Path) -> list[str]:
    events = WorkflowHistory.from_json(path.stem, path.read_text()).events
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
            if e.HasField("activity_task_scheduled_event_attributes")]


def test_lean_runs_hand_over_before_settling():
    """From 0.8 on the next stage's dispatch settles the finished stage's file when both are
    on one host (no settle_task of its own), else settle_task follows the next command; runs
    recorded without the marker schedule settle_task first (0.7)."""
    lean, before = scheduled(ROOT / "pipeline-clean.json"), scheduled(ROOT / "0.7" /
                                                                       "pipeline-clean.json")
    assert before[:3] == ["dispatch_stage", "settle_task", "dispatch_stage"]
    assert lean[:4] == ["dispatch_stage"] * 3 + ["process_triage_output"]
    assert lean.count("settle_task") == before.count("settle_task") - 2  # two carried
    routed, routed_before = (scheduled(ROOT / "pipeline-routed.json"),
                             scheduled(ROOT / "0.7" / "pipeline-routed.json"))
    # Across hosts only fixes → close (both on the dev host) can carry a settlement.
    assert routed.count("settle_task") == routed_before.count("settle_task") - 1


def patches(path: Path) -> list[str]:
    """The ids of the patch markers a recorded history carries, in order."""
    events = WorkflowHistory.from_json(path.stem, path.read_text()).events
    return [json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0]
                       .data)["id"]
            for e in events if e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_patch"]


def test_new_paths_record_their_release_markers():
    """0.9's changes were recorded where their path was taken, and only there."""
    earlier = ROOT / "0.9"
    assert patches(earlier / "pipeline-routed.json") == [
        "native-run-0.7", "lean-handoff-0.8", "host-liveness-0.9"]
    assert patches(ROOT / "0.8" / "pipeline-routed.json") == [
        "native-run-0.7", "lean-handoff-0.8"]
    assert patches(earlier / "pipeline-triage-refused.json") == [
        "native-run-0.7", "lean-handoff-0.8", "refused-triage-parks-0.9"]
    assert patches(earlier / "pipeline-clean.json") == ["native-run-0.7", "lean-handoff-0.8"]


def test_a_new_run_records_one_marker_for_every_release():
    """From 0.10 a run's first marker, first of all its commands, stands for all earlier ones,
    whichever paths the run takes (routed, refused triage, plan); 0.11's follows it."""
    for folder, markers in ((ROOT, ["lean-start-0.10", "operator-decision-0.11"]),
                            (ROOT / "0.10", ["lean-start-0.10"])):
        for path in sorted(folder.glob("*.json")):
            assert patches(path) == markers, path.name
            events = WorkflowHistory.from_json(path.stem, path.read_text()).events
            first_command = next(e for e in events if e.event_type > 7)  # after the first task
            assert first_command.marker_recorded_event_attributes.marker_name == "core_patch"
    refused = scheduled(ROOT / "0.10" / "pipeline-triage-refused.json")
    assert refused.count("process_triage_output") == 1  # refused, not retried
    assert "notify_blocks" in refused and refused.count("dispatch_stage") == 3  # no close


def test_blocks_are_notified_before_fixes_and_each_set_is_decided():
    """0.11: notify_findings is scheduled right after triage, before the fixes stage; a
    corrected triage file's blocks are notified and awaited again; failures leave summaries."""
    events = WorkflowHistory.from_json("approved", (ROOT / "pipeline-blocks-approved.json")
                                       .read_text()).events
    types = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
             for e in events if e.HasField("activity_task_scheduled_event_attributes")}
    done = [types[e.activity_task_completed_event_attributes.scheduled_event_id]
            for e in events if e.HasField("activity_task_completed_event_attributes")
            and types[e.activity_task_completed_event_attributes.scheduled_event_id]
            in ("dispatch_stage", "notify_findings")]
    assert done[3:5] == ["notify_findings", "dispatch_stage"]  # notified while fixes ran
    before = scheduled(ROOT / "0.10" / "pipeline-blocks-approved.json")
    assert before.index("notify_blocks") > before.index("process_triage_output") + 1
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



def test_the_start_marker_stands_only_for_older_markers():
    """`lean-start-0.10` implies exactly the markers of earlier releases: one added later
    must be asked on its own, or a run started by 0.10 would replay into the new path."""
    from contract import Marker
    from workflows.versions import IMPLIED_BY_START

    def release(marker: str) -> tuple[int, ...]:
        return tuple(int(part) for part in marker.rsplit("-", 1)[1].split("."))

    markers = [value for name, value in vars(Marker).items() if name.isupper()]
    start = release(Marker.LEAN_START)
    assert {m for m in markers if release(m) < start} == IMPLIED_BY_START
