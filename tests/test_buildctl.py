"""buildctl.py as operators run it: a subprocess against the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from temporalio.client import WorkflowFailureError

from testbed.agents import AgentSim, triage_writer
from testbed.helpers import (
    BUILDCTL,
    buildctl,
    eventually,
    make_origin,
    plan_file,
    reaches_stage,
    start_pipeline,
)
from workflows.build_pipeline import BuildPipelineWorkflow


async def test_start_status_list_approve(client, cfg, dirs, env, worker):
    (dirs["home"] / "send-matrix.sh").write_text("#!/bin/sh\nexit 0\n")
    (dirs["home"] / "send-matrix.sh").chmod(0o755)
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    origin = make_origin(dirs["tasks"])
    hold_close = {"on": True}
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["b1"]}),
                  "build_closeout": lambda d, p: None if hold_close["on"] else ("success", "r")}
    async with AgentSim(dirs["tasks"], env, behaviours):
        code, out, err = await buildctl(env, "start", "--build-name", "ctl-demo", "--plan-path",
                                        plan_file(dirs), "--task-id", origin, "--agent", "dev",
                                        "--id", "ctl-demo-1")
        assert code == 0, err
        ui_port = int(env["TEMPORAL_ADDRESS"].rsplit(":", 1)[1]) + 1000  # as run.sh puts it
        assert out.splitlines() == ["started ctl-demo-1",
                                    f"http://localhost:{ui_port}/namespaces/default/workflows/"
                                    "ctl-demo-1"]
        handle = client.get_workflow_handle("ctl-demo-1")
        description = await handle.describe()
        assert (await description.static_summary()) == "Build ctl-demo for agent dev"

        await reaches_stage(handle, "wait")
        code, out, _ = await buildctl(env, "--json", "status", "ctl-demo-1")
        status = json.loads(out)
        assert code == 0 and status["status"] == "running"
        assert status["progress"]["stage"] == "wait" and status["progress"]["deadline"]
        code, out, _ = await buildctl(env, "--json", "list")
        rows = json.loads(out)["workflows"]
        assert {"workflow_id": "ctl-demo-1", "stage": "wait"}.items() <= next(
            r for r in rows if r["workflow_id"] == "ctl-demo-1").items()
        code, out, err = await buildctl(env, "approve", "ctl-demo-1", "--by", "alice",
                                        "--reason", "ok")
        assert code == 0, err
        assert out.strip() == "ctl-demo-1: approved by alice"
        code, _, err = await buildctl(env, "reject", "ctl-demo-1", "--by", "bob",
                                      "--reason", "late")
        assert code == 7 and "refused: this pipeline is not waiting" in err
        hold_close["on"] = False
        result = await handle.result()
    assert yaml.safe_load(Path(result["summary_path"]).read_text())["decided_by"] == "alice"


async def test_errors_have_distinct_codes(client, cfg, dirs, env, worker):
    code, out, err = await buildctl(env, "start", "--build-name", "Bad!", "--plan-path", "/p",
                                    "--task-id", "12345678-x", "--agent", "dev")
    assert code == 3 and "--build-name" in err and "Traceback" not in err
    code, _, err = await buildctl(env, "status", "no-such-build")
    assert code == 4 and "not found" in err
    code, out, _ = await buildctl(env, "--json", "approve", "no-such-build", "--by", "x")
    assert code == 4 and json.loads(out)["exit_code"] == 4
    code, _, err = await buildctl({**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}, "list")
    assert code == 5 and "cannot reach" in err
    code, _, err = await buildctl({**env, "BLOCK_CHECK_INTERVAL": "never"}, "list")
    assert code == 6 and "BLOCK_CHECK_INTERVAL" in err
    code, _, err = await buildctl(env, "reject", "x", "--by", "bob")
    assert code == 2 and "--reason" in err


async def test_plan_and_cancel(client, cfg, dirs, env, worker, tmp_path):
    plan_file = tmp_path / "plan.yml"
    plan_file.write_text(yaml.safe_dump({"plan_name": "ctl-plan", "phases": [
        {"number": 1, "agent_type": "dev", "description": "first"}]}))
    code, out, err = await buildctl(env, "plan", str(plan_file), "--id", "ctl-plan-1")
    assert code == 0, err
    await eventually(lambda: list(dirs["tasks"].glob("*.yml")))
    code, out, err = await buildctl(env, "cancel", "ctl-plan-1")
    assert code == 0 and "cancellation requested" in out
    handle = client.get_workflow_handle("ctl-plan-1")

    async def cancelled() -> bool:
        return (await handle.describe()).status.name == "CANCELED"

    await eventually(cancelled)
    # the agent's task file is withdrawn, so nobody starts work on a cancelled build
    document = yaml.safe_load(next(dirs["tasks"].glob("*.yml")).read_text())
    assert document["status"] == "cancelled"
    assert "pipeline cancelled during stage phase 1" in document["history"][-1]["note"]
    bad = tmp_path / "bad.yml"
    bad.write_text("plan_name: x\nphases: []\n")
    code, _, err = await buildctl(env, "plan", str(bad))
    assert code == 3 and "phases" in err




async def test_hostile_arguments_and_plan_files_get_documented_codes(env, dirs, tmp_path):
    code, _, err = await buildctl(env, "status", b"build-\xff\xfe")
    assert code == 3 and "workflow-id is not valid UTF-8" in err
    code, _, err = await buildctl(env, "approve", "x", "--by", b"\xffal")
    assert code == 3 and "Traceback" not in err
    plans = {
        "binary.yml": b"plan_name: \xff\xfe\n",
        "nested.yml": b"plan_name: p\nphases:\n" + b"- " * 100_000 + b"x\n",
        "brackets.yml": b"phases: " + b"[" * 5000,
    }
    for name, text in plans.items():
        (tmp_path / name).write_bytes(text)
    os.mkfifo(tmp_path / "fifo.yml")  # must not block the CLI
    for name in [*plans, "fifo.yml"]:
        code, _, err = await buildctl(env, "plan", str(tmp_path / name))
        assert code == 3, (name, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


async def test_start_refuses_a_missing_origin_and_names_every_invalid_field(client, cfg, env,
                                                                           dirs, worker):
    plan = plan_file(dirs)
    code, _, err = await buildctl(env, "start", "--build-name", "no-origin", "--plan-path",
                                  plan, "--task-id", "no-such-task-1", "--agent", "dev")
    assert code == 7 and len(err.strip().splitlines()) == 1
    assert "originating task no-such-task-1 has no task file" in err
    assert "--without-origin-file" in err
    code, _, err = await buildctl(env, "start", "--build-name", "Bad!", "--plan-path",
                                  plan, "--task-id", "<id>", "--agent", "dev")
    assert code == 3 and "--build-name" in err and "--task-id" in err
    code, _, err = await buildctl(env, "start", "--build-name", "rel", "--plan-path",
                                  "plans/x.md", "--task-id", "origin-1234", "--agent", "dev")
    assert code == 3 and "--plan-path: must be an absolute path" in err
    code, out, err = await buildctl(env, "--json", "start", "--build-name", "elsewhere",
                                    "--plan-path", plan, "--task-id", "origin-1234",
                                    "--agent", "dev", "--without-origin-file")
    assert code == 0, err
    await client.get_workflow_handle(json.loads(out)["workflow_id"]).terminate("test over")


async def test_status_of_ended_builds_tells_why_and_awaits_nothing(client, cfg, dirs, env,
                                                                   worker):
    (dirs["home"] / "send-matrix.sh").write_text("#!/bin/sh\nexit 0\n")
    (dirs["home"] / "send-matrix.sh").chmod(0o755)
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["b1"]})}
    async with AgentSim(dirs["tasks"], env, behaviours):
        origin = make_origin(dirs["tasks"])
        _, out, _ = await buildctl(env, "--json", "start", "--build-name", "why",
                                   "--plan-path", plan_file(dirs), "--task-id", origin,
                                   "--agent", "dev")
        workflow_id = json.loads(out)["workflow_id"]
        handle = client.get_workflow_handle(workflow_id)

        await reaches_stage(handle, "wait")
        code, _, err = await buildctl(env, "reject", workflow_id, "--by", "bob", "--reason",
                                      "unsafe")
        assert code == 0, err

        async def ended() -> dict | None:
            _, out, _ = await buildctl(env, "--json", "status", workflow_id)
            status = json.loads(out)
            return status if status["status"] != "running" else None

        status = await eventually(ended)
    assert status["status"] == "failed"
    assert status["reason"] == "Build why rejected by bob: unsafe"
    assert status["progress"]["deadline"] is None and status["progress"]["waiting_on"] is None
    code, out, _ = await buildctl(env, "status", workflow_id)
    assert "reason: Build why rejected by bob: unsafe" in out
    assert "deadline" not in out and "waiting on" not in out


async def test_readme_json_start_fails_cleanly_and_answers_queries(client, cfg, env, worker):
    readme = (Path(BUILDCTL).parent / "README.md").read_text()
    example = readme.split("--input '", 1)[1].split("'", 1)[0]
    handle = await client.start_workflow("BuildPipelineWorkflow", json.loads(example),
                                         id=f"readme-json-{os.getpid()}",
                                         task_queue=cfg.task_queue)
    code, out, err = await buildctl(env, "--json", "status", handle.id)
    assert code == 0, err
    bad = await client.start_workflow(
        "BuildPipelineWorkflow", {**json.loads(example), "task_id": "<id>", "plan_path": "x"},
        id=f"bad-json-{os.getpid()}", task_queue=cfg.task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await bad.result()
    assert "invalid input: task_id: must be 8-128" in str(failed.value.cause)
    progress = await bad.query(BuildPipelineWorkflow.progress)
    assert progress.stage == "invalid input"
    code, out, _ = await buildctl(env, "status", bad.id)
    assert code == 0 and "reason: invalid input: task_id" in out
    await handle.terminate("test over")


async def test_a_running_id_and_repeated_phase_numbers_are_one_line_refusals(
        client, cfg, dirs, env, worker, tmp_path):
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    origin = make_origin(dirs["tasks"])
    start = ["start", "--build-name", "twice", "--plan-path", plan_file(dirs), "--task-id",
             origin, "--agent", "dev", "--id", f"twice-{os.getpid()}"]
    code, _, err = await buildctl(env, *start)
    assert code == 0, err
    code, _, err = await buildctl(env, *start, "--allow-shared-origin")
    assert code == 7 and len(err.strip().splitlines()) == 1 and "already running" in err
    plan = tmp_path / "plan.yml"
    plan.write_text(yaml.safe_dump({"plan_name": "dup", "phases": [
        {"number": 1, "agent_type": "dev", "description": "a"},
        {"number": 1, "agent_type": "dev", "description": "b"}]}))
    code, _, err = await buildctl(env, "plan", str(plan))
    assert code == 3 and "phase number 1 appears more than once" in err
    await client.get_workflow_handle(f"twice-{os.getpid()}").terminate("test over")


async def test_a_reader_that_leaves_early_gets_no_traceback(client, cfg, dirs, env, worker):
    """`./buildctl.py status <id> | head -2` when status prints more than the reader takes."""
    handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "early-reader")
    reader, writer = os.pipe()
    os.close(reader)  # gone before buildctl writes anything
    process = await asyncio.create_subprocess_exec(
        sys.executable, BUILDCTL, "status", handle.id, stdout=writer,
        stderr=asyncio.subprocess.PIPE, env=env)
    os.close(writer)
    _, err = await process.communicate()
    assert process.returncode == 0, err
    assert err == b""
    await handle.terminate("test over")
