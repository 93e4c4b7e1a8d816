"""BuildPlanWorkflow on the real dev server."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from temporalio.client import WorkflowFailureError

from models import BuildPlanInput, BuildPlanResult, PhaseSpec
from testbed.agents import AgentSim
from testbed.helpers import eventually, files_of_type, make_origin


def plan(*phases: PhaseSpec) -> BuildPlanInput:
    return BuildPlanInput(plan_name="homelab-dns", phases=list(phases))


async def test_phases_run_in_order(client, cfg, dirs, env, worker):
    phases = [PhaseSpec(number=1, agent_type="dev", description="write the zone files",
                        context_refs=["/plans/dns.md"]),
              PhaseSpec(number=2, agent_type="ops", description="deploy")]
    async with AgentSim(dirs["tasks"], env) as agents:
        handle = await client.start_workflow("BuildPlanWorkflow", plan(*phases), id="plan-ok",
                                             task_queue=cfg.task_queue,
                                             result_type=BuildPlanResult)
        result = await handle.result()
    assert result == BuildPlanResult(status="complete", phases_run=2)
    assert [d["payload"]["phase_number"] for d in agents.seen] == [1, 2]
    first = agents.seen[0]
    assert first["task_type"] == "build_phase" and first["target_agent"] == "dev"
    assert first["summary"] == "Build phase 1: write the zone files"
    assert first["payload"]["workflow_id"] == "plan-ok"
    assert first["payload"]["context_refs"] == ["/plans/dns.md"]
    assert "/plans/dns.md" in first["payload"]["instruction"]


async def test_failed_phase_fails_plan(client, cfg, dirs, env, worker):
    async with AgentSim(dirs["tasks"], env, {"build_phase": lambda d, p: ("failed", "no")}):
        handle = await client.start_workflow(
            "BuildPlanWorkflow", plan(PhaseSpec(number=3, agent_type="dev", description="x")),
            id="plan-fail", task_queue=cfg.task_queue)
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert caught.value.cause.message == "Phase 3 failed: no"
    assert caught.value.cause.type == "PhaseFailedError"


async def test_plain_json_start_with_temporal_cli(client, cfg, dirs, env, worker, server,
                                                  cli_path):
    """Operators start pipelines with plain JSON: snake_case keys, no Python."""

    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    origin = make_origin(dirs["tasks"])
    payload = ('{"build_name":"json-demo","plan_path":"/p/plan.md",'
               f'"task_id":"{origin}","target_agent":"dev"}}')
    subprocess.run([cli_path, "workflow", "start", "--address", server.address,
                    "--type", "BuildPipelineWorkflow", "--task-queue", cfg.task_queue,
                    "--workflow-id", "json-demo-1", "--input", payload],
                   check=True, capture_output=True)
    await eventually(lambda: files_of_type(dirs["tasks"], "build_prefab"))
    document = files_of_type(dirs["tasks"], "build_prefab")[0]
    assert document["payload"]["plan_path"] == "/p/plan.md"
    await client.get_workflow_handle("json-demo-1").terminate("done")


@pytest.mark.parametrize("field,value", [("build_name", "Bad Name!"),
                                         ("plan_path", "/plans/../../etc/shadow"),
                                         ("target_agent", "../../tmp/x")])
async def test_invalid_json_input_fails_at_once_and_writes_nothing(
        client, cfg, dirs, env, worker, server, cli_path, field, value):
    payload = {"build_name": "ok-build", "plan_path": "/p/plan.md",
               "task_id": "12345678-aaaa", "target_agent": "dev", field: value}
    workflow_id = f"bad-input-{field}"
    subprocess.run([cli_path, "workflow", "start", "--address", server.address,
                    "--type", "BuildPipelineWorkflow", "--task-queue", cfg.task_queue,
                    "--workflow-id", workflow_id, "--input", json.dumps(payload)],
                   check=True, capture_output=True)
    handle = client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    message = str(caught.value.cause)
    assert f"invalid input: {field}: " in message  # one line naming the field
    assert not dirs["tasks"].exists() or not list(dirs["tasks"].glob("*.yml"))
    assert not dirs["audit"].exists()
    history = await handle.fetch_history()
    failed_tasks = [e for e in history.events
                    if e.HasField("workflow_task_failed_event_attributes")]
    assert failed_tasks == []


def test_yaml_roundtrip_of_phase_spec():
    spec = PhaseSpec.model_validate(yaml.safe_load("number: 1\nagent_type: dev\n"
                                                   "description: do it\n"))
    assert spec.context_refs == []


async def test_each_phase_gets_two_attempts(client, server, dirs):
    """A phase whose agent never finishes times out, is handed out once more (the same file,
    a fresh token), and times out again: then the plan fails."""
    from config import load_config
    from testbed.helpers import running_worker, worker_env

    env = worker_env(server, dirs, TIMEOUT_PHASE="2s")
    config = load_config(env)
    async with running_worker(client, config), AgentSim(dirs["tasks"], env,
                                                         {"build_phase": lambda d, p: None}):
        handle = await client.start_workflow(
            "BuildPlanWorkflow", plan(PhaseSpec(number=1, agent_type="dev", description="x")),
            id=f"two-attempts-{config.task_queue}", task_queue=config.task_queue)
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "Phase 1 failed" in str(caught.value.cause)
    phases = files_of_type(dirs["tasks"], "build_phase")
    assert len(phases) == 1  # one file per phase, rewritten for the second attempt
    notes = [entry["note"] for entry in phases[0]["history"]]
    assert any("attempt 2: fresh task token" in note for note in notes)
    history = await handle.fetch_history()
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.HasField("activity_task_started_event_attributes")]
    assert max(attempts) == 2
