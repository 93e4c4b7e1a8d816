"""JSON log lines: every line parses, carries worker_id; activity lines carry context."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from logs import WORKER_ID, JsonFormatter
from testbed.agents import AgentSim
from testbed.helpers import eventually, files_of_type, start_pipeline, worker_env
from testbed.processes import WorkerProcess, started_worker


def test_formatter_adds_temporal_context():
    record = logging.makeLogRecord({"msg": "task_dispatched", "levelname": "INFO",
                                    "name": "activities", "task_id": "abc",
                                    "temporal_activity": {"workflow_id": "wf-1",
                                                          "activity_type": "implement_build"}})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["event"] == "task_dispatched" and entry["worker_id"] == WORKER_ID
    assert entry["workflow_id"] == "wf-1" and entry["activity"] == "implement_build"
    assert entry["task_id"] == "abc" and entry["level"] == "INFO" and "timestamp" in entry


async def test_worker_process_logs_and_stops_gracefully(client, server, dirs, tmp_path):
    log_file = tmp_path / "extra.log"
    env = worker_env(server, dirs, LOG_FILE=str(log_file))
    async with started_worker(env, tmp_path / "stdout.log") as worker:
        async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
            handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "logged")
            await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        await worker.wait_event("task_dispatched", count=2)
    assert worker.process is not None and worker.process.returncode == 0
    events = worker.events()
    assert [e["event"] for e in events if e["event"].startswith("worker_")] == [
        "worker_starting", "worker_started", "worker_stopped"]
    loaded = [e for e in events if e["event"] == "config_loaded"]
    assert len(loaded) == 1 and loaded[0]["config"]["task_queue"] == env["TASK_QUEUE"]
    assert [e["event"] for e in events].count("tls_disabled") == 1  # a plain connection
    channels = [e for e in events if e["event"] == "channels"]
    assert len(channels) == 1 and channels[0]["level"] == "WARNING"  # files can decide
    assert all(e.get("worker_id") == events[0]["worker_id"] for e in events)
    dispatched = [e for e in events if e["event"] == "task_dispatched"]
    assert dispatched[0]["workflow_id"] == handle.id
    assert {e["activity"] for e in dispatched} == {"dispatch_stage"}
    assert {e["task_type"] for e in dispatched} == {"build_prefab", "build_plan"}
    assert "<non-json>" not in {e["event"] for e in events}
    assert "worker_stopped" in log_file.read_text()
    tokens = [d["payload"]["task_token"] for d in files_of_type(dirs["tasks"], "build_plan")]
    assert tokens and all(t not in (tmp_path / "stdout.log").read_text() for t in tokens)
    await handle.terminate("done")


async def test_no_task_token_at_debug_and_log_file_is_private(client, server, dirs, tmp_path):
    log_file = tmp_path / "debug.log"
    env = worker_env(server, dirs, LOG_LEVEL="DEBUG", LOG_FILE=str(log_file))
    async with started_worker(env, tmp_path / "stdout.log") as worker:
        async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
            handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "debug")
            await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        await worker.wait_event("task_dispatched", count=2)
    assert oct(log_file.stat().st_mode & 0o777) == oct(0o600)
    text = log_file.read_text() + (tmp_path / "stdout.log").read_text()
    assert "Running activity" in text  # the SDK's DEBUG lines are there, without tokens
    for kind in ("build_prefab", "build_plan"):
        token = files_of_type(dirs["tasks"], kind)[0]["payload"]["task_token"]
        raw = base64.b64decode(token)
        assert token not in text and token[:40] not in text
        assert repr(raw)[2:-1][:40] not in text  # the bytes form the SDK prints
    await handle.terminate("done")


@pytest.mark.parametrize("override,code,event,detail", [
    ({"BLOCK_CHECK_INTERVAL": "never"}, 6, "config_invalid", "BLOCK_CHECK_INTERVAL"),
    ({"TEMPORAL_ADDRESS": "127.0.0.1:1"}, 5, "temporal_unreachable", "127.0.0.1:1"),
], ids=["config", "unreachable"])
async def test_worker_failing_to_start_exits_with_its_code_and_one_line(
        server, dirs, tmp_path, override, code, event, detail):
    worker = WorkerProcess(worker_env(server, dirs, **override), tmp_path / "out.log")
    worker.start()
    assert await worker.wait_exit() == code  # exceptions.Exit: 6 CONFIG, 5 UNREACHABLE
    errors = [e for e in worker.events() if e.get("level") == "ERROR"]
    assert [e["event"] for e in errors] == [event]
    assert detail in errors[0]["error"]


def test_the_cores_activity_not_found_warning_loses_its_token():
    """The SDK core's "Activity not found on completion" warning prints `TaskToken(<base64>)`
    (seen after a run was terminated while one of its activities ran)."""
    from logs import TokenRedactor

    record = logging.makeLogRecord({
        "name": "temporal_core-sdk_core::temporalio_sdk_core::worker::activities",
        "levelno": logging.WARNING, "levelname": "WARNING",
        "msg": "Activity not found on completion. {'task_token': 'TaskToken(CiQwMWEy"
               "MjhiMS1lNTdj==)', 'details': '<redacted>'}"})
    TokenRedactor().filter(record)
    assert "CiQwMWEy" not in record.getMessage() and "<redacted>" in record.getMessage()
