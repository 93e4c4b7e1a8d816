"""Load, parked capacity and crashes: nothing lost, nothing duplicated (bounded, loopback)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client

from config import load_config
from models import Progress
from testbed.agents import AgentSim, triage_writer
from testbed.devserver import DevServer, free_port
from testbed.helpers import (
    connect_client,
    eventually,
    running_worker,
    stage_file,
    start_pipeline,
    worker_env,
)
from testbed.processes import WorkerProcess, started_worker

SEED = 20261121


def notify_ok(home: Path) -> None:
    script = home / "send-matrix.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)


def stage_files_per_pipeline(task_dir: Path) -> Counter[tuple[str, str]]:
    """(build, task_type) → number of task files the worker wrote."""
    counts: Counter[tuple[str, str]] = Counter()
    for path in task_dir.glob("*.yml"):
        document = yaml.safe_load(path.read_text())
        if document["source_agent"] == "temporal-worker":
            build = document["payload"].get("build_name") or document["payload"]["plan_name"]
            counts[(build, document["task_type"])] += 1
    return counts


def worker_errors(worker: WorkerProcess) -> list[dict]:
    return [e for e in worker.events() if e.get("level") in ("ERROR", "CRITICAL")
            or e.get("event") == "<non-json>"]


async def run_many(client: Client, queue: str, dirs: dict[str, Path], names: list[str],
                   agents_client: Client) -> list[object]:
    triage = {"flags": ["tighten permissions"]}
    env = {"unused": "in-process agents"}
    async with AgentSim(dirs["tasks"], env, {"security_audit": triage_writer(
            dirs["audit"], triage)}, client=agents_client, interval=0.1) as agents:
        handles = [await start_pipeline(client, queue, dirs["tasks"], name) for name in names]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 270)
    assert agents.errors == []
    return list(results)


async def test_200_pipelines_at_once(client, server, dirs, tmp_path):
    env = worker_env(server, dirs)
    async with started_worker(env, tmp_path / "worker.log") as worker:
        names = [f"load-{i:03d}" for i in range(200)]
        results = await run_many(client, env["TASK_QUEUE"], dirs, names, client)
    assert len(results) == 200 and all(r.status == "complete" for r in results)
    counts = stage_files_per_pipeline(dirs["tasks"])
    assert len(counts) == 200 * 5 and set(counts.values()) == {1}
    assert worker_errors(worker) == []


async def test_a_burst_of_starts_runs_on_a_few_workflow_threads(client, env, dirs):
    """MAX_CONCURRENT_WORKFLOW_TASKS bounds the threads workflow tasks run on (the SDK's own
    pool would grow to one per concurrent task, up to 500), and every start still goes through."""
    def workflow_threads() -> int:
        return sum(t.name.startswith("workflow-task") for t in threading.enumerate())

    config = load_config({**env, "MAX_CONCURRENT_WORKFLOW_TASKS": "2"})
    async with running_worker(client, config):
        handles = await asyncio.gather(*(start_pipeline(client, env["TASK_QUEUE"],
                                                        dirs["tasks"], f"burst-{i:02d}")
                                         for i in range(24)))
        await eventually(lambda: len(list(dirs["tasks"].glob("*.yml"))) >= 48, timeout=60)
        assert stage_file(dirs["tasks"], "build_prefab") is not None
        assert 1 <= workflow_threads() <= 2
        for handle in handles:
            await handle.terminate("test over")


async def test_parked_pipelines_hold_no_slots(client, server, dirs, tmp_path):
    notify_ok(dirs["home"])
    env = worker_env(server, dirs, MAX_CONCURRENT_ACTIVITIES="10")
    queue = env["TASK_QUEUE"]
    async with started_worker(env, tmp_path / "worker.log") as worker:
        blocked = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["needs a human"]})}
        async with AgentSim(dirs["tasks"], env, blocked, client=client, interval=0.1):
            handles = [await start_pipeline(client, queue, dirs["tasks"], f"park-{i:03d}")
                       for i in range(150)]

            async def all_parked() -> bool:
                count = await client.count_workflows(
                    f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'")
                if count.count < 150:
                    return False
                stages = await asyncio.gather(*(h.query("progress", result_type=Progress)
                                                for h in handles))
                return all(p.stage == "wait" for p in stages)

            await eventually(all_parked, 300, 1.0)
        clean = {"security_audit": triage_writer(dirs["audit"], {})}
        async with AgentSim(dirs["tasks"], env, clean, client=client, interval=0.1):
            fresh = await start_pipeline(client, queue, dirs["tasks"], "fresh-build")
            result = await asyncio.wait_for(fresh.result(), 120)
        assert result.status == "complete"
        for handle in handles:
            await handle.terminate("done")
    assert worker_errors(worker) == []


@pytest.mark.parametrize("round_", range(3))
async def test_sigkill_at_random_points(client, server, dirs, tmp_path, round_):
    rng = random.Random(SEED + round_)
    env = worker_env(server, dirs)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    await worker.wait_event("worker_started")
    names = [f"crash-{i:02d}" for i in range(30)]
    kills_in_flight = 0
    try:
        run = asyncio.ensure_future(run_many(client, env["TASK_QUEUE"], dirs, names, client))
        for _ in range(4):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            kills_in_flight += not run.done()
            worker.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            worker.start()
        results = await run
    finally:
        await worker.stop()
    assert kills_in_flight >= 1  # at least one kill landed while pipelines were running
    assert all(r.status == "complete" for r in results)
    counts = stage_files_per_pipeline(dirs["tasks"])
    assert len(counts) == 30 * 5 and set(counts.values()) == {1}


async def test_dev_server_restart_mid_run(dirs, tmp_path, cli_path):
    dev = DevServer(cli_path, tmp_path / "persistent.db", free_port(), free_port(),
                    tmp_path / "server.log")
    dev.start()
    client = await connect_client(dev.address)
    env = worker_env(dev, dirs)
    try:
        async with started_worker(env, tmp_path / "worker.log"):
            names = [f"restart-{i:02d}" for i in range(30)]
            run = asyncio.ensure_future(run_many(client, env["TASK_QUEUE"], dirs, names,
                                                 client))
            await eventually(lambda: len(list(dirs["tasks"].glob("*.yml"))) > 40, 60)
            dev.stop()
            await asyncio.sleep(1.0)  # a real outage: the server is away for a while
            dev.start()
            results = await run
    finally:
        dev.stop()
    assert all(r.status == "complete" for r in results)
    counts = stage_files_per_pipeline(dirs["tasks"])
    assert len(counts) == 30 * 5 and set(counts.values()) == {1}
