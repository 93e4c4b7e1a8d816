"""The determinism guard reaches every helper a workflow runs: a pipeline and a plan run end
to end under the SDK's sandbox with our modules imported inside it (tests/sandbox.py; every
recorded history replays there too: tests/test_replay.py), and a clock read, random number,
environment read or file I/O planted in a helper fails a replay and a sandboxed worker's
workflow task."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from models import BuildPipelineResult, BuildPlanInput, BuildPlanResult, PhaseSpec
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import eventually, running_worker, start_pipeline
from tests.sandbox import own_modules_in_sandbox, planted, replay_in_sandbox, strict_runner

ROOT = Path(__file__).parent / "histories"
PROBES = {
    "wall clock": "__import__('time').time()",
    "datetime.now": "__import__('datetime').datetime.now()",
    "random": "__import__('random').random()",
    "environment": "__import__('os').environ.get('HOME')",
    "getenv": "__import__('os').getenv('HOME')",
    "file I/O": "open('/dev/null').close()",
    "configuration": "__import__('config').load_config()",
}
# A helper of each module on a workflow's path, and a history whose replay calls it.
HELPERS = {
    "findings.shown": "pipeline-flags",
    "safeio.inert.markdown": "pipeline-flags",
    "models.finished_outcome": "pipeline-clean",
    "models.StageTimings.limit": "plan",
    "stages.Stage.task_key": "pipeline-clean",
    "taskdir.names.stage_task_id": "pipeline-clean",
    "workflows.run_input.checked_input": "plan",
    "workflows.stage_results.stage_result": "pipeline-clean",
    "workflows.handoff.Handoff.settle": "pipeline-routed",
    "workflows.decisions.DecisionGate.take_file_status": "pipeline-blocks-approved",
    "workflows.versions.started_by_v05": "v0.5/E-clean-completed",
    "workflows.legacy.pipeline.V05Pipeline._finish_wait": "v0.5/G-blocks-approved-completed",
}


def split(helper: str) -> tuple[str, str]:
    """`pkg.module.Class.method` -> (`pkg.module`, `Class.method`): a capital starts a class."""
    parts = helper.split(".")
    first = next((n for n, part in enumerate(parts) if part[0].isupper()), len(parts) - 1)
    return ".".join(parts[:first]), ".".join(parts[first:])


@pytest.mark.slow  # ~0.5 s each in the sandbox: kept out of the quick check
@pytest.mark.parametrize("probe", sorted(PROBES))
@pytest.mark.parametrize("helper", sorted(HELPERS))
async def test_a_planted_nondeterministic_call_fails_replay(helper: str, probe: str):
    module, target = split(helper)
    with planted(module, target, PROBES[probe]):
        failure = await replay_in_sandbox(ROOT / f"{HELPERS[helper]}.json", raise_on_failure=False)
    assert "from inside a workflow" in str(failure), failure


async def sandboxed_worker_runs_a_flagged_pipeline(client, cfg, dirs, env) -> None:
    """A pipeline whose audit flags a finding, through fixes to close, on a sandboxed worker."""
    triage = {"flags": [{"description": "chmod 777 on /data"}], "blocks": []}
    behaviours = {"security_audit": triage_writer(dirs["audit"], triage)}
    async with AgentSim(dirs["tasks"], env, behaviours) as agents:
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "sandboxed")
        result = await handle.result()
    assert isinstance(result, BuildPipelineResult) and result.status == "complete"
    assert [d["task_type"] for d in agents.seen] == [
        "build_prefab", "build_plan", "security_audit", "security_fix", "build_closeout"]
    assert agents.errors == []


async def test_a_pipeline_runs_end_to_end_on_a_sandboxed_worker(client, cfg, dirs, env):
    with own_modules_in_sandbox():
        async with running_worker(client, cfg, strict_runner()):
            await sandboxed_worker_runs_a_flagged_pipeline(client, cfg, dirs, env)


async def test_a_plan_runs_end_to_end_on_a_sandboxed_worker(client, cfg, dirs, env):
    plan = BuildPlanInput(plan_name="sandboxed-plan", phases=[
        PhaseSpec(number=1, agent_type="dev", description="write the zone files"),
        PhaseSpec(number=2, agent_type="ops", description="deploy")])
    with own_modules_in_sandbox():
        async with running_worker(client, cfg, strict_runner()), AgentSim(dirs["tasks"], env):
            handle = await client.start_workflow(
                "BuildPlanWorkflow", plan, id=f"sandboxed-plan-{uuid.uuid4().hex[:8]}",
                task_queue=cfg.task_queue, result_type=BuildPlanResult)
            assert await handle.result() == BuildPlanResult(status="complete", phases_run=2)


async def task_failure(handle: WorkflowHandle) -> str:
    """The message of the run's first failed workflow task, or "" while there is none."""
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            return event.workflow_task_failed_event_attributes.failure.message
    return ""


async def test_a_planted_environment_read_fails_a_sandboxed_workers_task(client, cfg, dirs):
    """An environment read inside a run: the run's workflow task fails, naming the read."""
    with own_modules_in_sandbox(), planted("stages", "Stage.task_key", PROBES["environment"]):
        async with running_worker(client, cfg, strict_runner()):
            handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "planted")
            failure = await eventually(lambda: task_failure(handle))
            await handle.terminate("planted non-determinism seen")
    assert "os.environ" in failure and "from inside a workflow" in failure
