"""Several machines on one: host workers (WORKER_ROLE=host) with their own HOME and task
directory, agents played per host, and workers killed while builds are in flight."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle

from config import load_config
from connection.pollers import live_pollers
from models import Progress
from safeio.writing import write_private
from taskdir import dump
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import (
    buildctl,
    eventually,
    files_of_type,
    host_dirs,
    host_worker_env,
    progress_of,
    quiet_notifier,
    reaches_stage,
    running_worker,
    start_pipeline,
    task_files,
    worker_env,
    worker_without_sweep,
)
from testbed.processes import WorkerProcess, started_worker
from tests.task_queue_tool import override

STAGES = ("build_prefab", "build_plan", "security_audit", "security_fix", "build_closeout")


def stage_files(task_dir: Path) -> list[dict[str, Any]]:
    return [d for d in task_files(task_dir, strict=True)
            if d.get("source_agent") == "temporal-worker"]


def redispatches(documents: list[dict[str, Any]]) -> list[str]:
    """History notes that say a stage file got a new token (churn)."""
    return [entry.get("note", "") for d in documents for entry in d.get("history", [])
            if "fresh task token" in str(entry.get("note", ""))]


async def test_pipeline_across_three_hosts(client: Client, server, dirs, tmp_path):
    """Each agent's stages land in its own host's directory; triage reads the security
    host's audit directory; the originating task and the summary stay on the main host."""
    quiet_notifier(dirs["home"])
    main_queue = f"main-{uuid.uuid4().hex[:8]}"
    hosts = {"box": "claudebox", "sec": "security-agent", "dev": "dev"}
    queues = {host: f"{main_queue}-{host}" for host in hosts}
    routes = ",".join(f"{agent}={queues[host]}" for host, agent in hosts.items())
    cfg = load_config(worker_env(server, dirs, TASK_QUEUE=main_queue, AGENT_QUEUES=routes))
    places = {host: host_dirs(tmp_path, host) for host in hosts}
    workers = [WorkerProcess(host_worker_env(server, places[host], queues[host], main_queue),
                             tmp_path / f"{host}.log") for host in hosts]
    triage = {"blocks": ["needs a look"], "flags": ["pin the base image"]}
    agents = [AgentSim(places[host]["tasks"], host_worker_env(server, places[host],
                                                              queues[host], main_queue),
                       {"security_audit": triage_writer(places[host]["audit"], triage)})
              for host in hosts]
    for worker in workers:
        worker.start()
    try:
        await asyncio.gather(*(worker.wait_event("worker_started") for worker in workers))
        async with running_worker(client, cfg), agents[0], agents[1], agents[2]:
            handle = await start_pipeline(client, main_queue, dirs["tasks"], "three-hosts")
            progress = await reaches_stage(handle, "wait", 120)
            assert progress.stages_done == ["prefab", "implement", "audit", "triage", "fixes"]
            assert progress.findings  # notified before the fixes, decided once they ended
            origin = (await (await handle.describe()).memo())["awaiting_task_id"]
            override(dirs["tasks"], origin, "approved", "operator", "fine")
            result = await handle.result()
    finally:
        for worker in workers:
            await worker.stop()
    kinds = {host: Counter(d["task_type"] for d in stage_files(places[host]["tasks"]))
             for host in hosts}
    assert kinds == {"box": {"build_prefab": 1}, "sec": {"security_audit": 1},
                     "dev": {"build_plan": 1, "security_fix": 1, "build_closeout": 1}}
    for host in hosts:  # settled on their own host, by that host's worker; never re-sent
        assert {d["status"] for d in stage_files(places[host]["tasks"])} == {"completed"}
        assert redispatches(stage_files(places[host]["tasks"])) == []
    assert stage_files(dirs["tasks"]) == []  # the main host keeps only the originating task
    assert [d["status"] for d in task_files(dirs["tasks"])] == ["completed"]
    assert list(places["sec"]["audit"].rglob("request.md"))
    assert not dirs["audit"].exists() or not list(dirs["audit"].rglob("request.md"))
    assert Path(result.summary_path).is_relative_to(dirs["summaries"])
    fixes = files_of_type(places["dev"]["tasks"], "security_fix")[0]
    assert "pin the base image" in str(fixes["payload"]["flags"])


async def test_host_down_is_visible_and_costs_no_stage_time(client: Client, server, dirs,
                                                           tmp_path):
    """No worker polls the dev host's queue: progress, the Web UI details and buildctl say
    so; the stage waits without its 5 s limit running; the host comes up and it goes on."""
    quiet_notifier(dirs["home"])
    main_queue = f"main-{uuid.uuid4().hex[:8]}"
    dev_queue = f"{main_queue}-dev"
    env = worker_env(server, dirs, TASK_QUEUE=main_queue, AGENT_QUEUES=f"dev={dev_queue}",
                     TIMEOUT_IMPLEMENT="5s")
    place = host_dirs(tmp_path, "dev")
    host_env = host_worker_env(server, place, dev_queue, main_queue)
    audit = {"security_audit": triage_writer(dirs["audit"], {"info": ["clean"]})}
    hold = {"on": True}
    held = {"build_plan": lambda d, p: None if hold["on"] else ("success", "built")}
    async with running_worker(client, load_config(env)), AgentSim(dirs["tasks"], env, audit), \
            AgentSim(place["tasks"], host_env, held):
        handle = await start_pipeline(client, main_queue, dirs["tasks"], "host-down")

        async def unpolled() -> Progress | None:
            progress = await progress_of(handle)
            return progress if progress.queue_unpolled else None

        progress = await eventually(unpolled, 60)
        assert (progress.stage, progress.queue) == ("implement", dev_queue)
        metadata = await handle.query("__temporal_workflow_metadata",
                                      result_type=WorkflowMetadata)
        assert f"**Host queue:** {dev_queue} — no worker polls it" in metadata.current_details
        code, out, err = await buildctl(env, "status", handle.id)
        assert code == 0, err
        assert f"host queue: {dev_queue} (no worker polling" in out
        code, out, _ = await buildctl(env, "--json", "status", handle.id)
        host = json.loads(out)["host_queue"]
        assert (host["name"], host["live_pollers"]) == (dev_queue, 0)
        # More than the implement stage's 5 s limit passes while the host is down: the
        # workflow looks again every 0.5 s, so 12 looks are at least 6 s of waiting.
        await eventually(lambda: _looks_at_queue(handle, 12), 60)
        assert files_of_type(place["tasks"], "build_plan") == []
        async with started_worker(host_env, tmp_path / "dev.log"):
            await eventually(lambda: files_of_type(place["tasks"], "build_plan"), 60)

            async def polled() -> dict[str, Any] | None:
                code, out, _ = await buildctl(env, "--json", "status", handle.id)
                host = json.loads(out).get("host_queue") if code == 0 else None
                return host if host and host["live_pollers"] >= 1 else None

            assert (await eventually(polled, 60))["name"] == dev_queue

            async def seen_by_workflow() -> bool:  # it looks again every 0.5 s
                return not (await progress_of(handle)).queue_unpolled

            await eventually(seen_by_workflow, 30)
            hold["on"] = False
            result = await handle.result()
    assert Path(result.summary_path).exists()


async def _looks_at_queue(handle: WorkflowHandle, count: int) -> bool:
    looks = 0
    async for event in handle.fetch_history_events():
        attributes = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and \
                any(name in attributes.details["data"].SerializeToString()
                    for name in (b"queue_polled", b"host_queue_state")):
            looks += 1
    return looks >= count


async def test_two_host_workers_share_a_directory_and_one_dies(client: Client, server, dirs,
                                                               tmp_path):
    """Two host workers serve one host (one directory): the one that wrote the held stage's
    file is SIGKILLed; the other carries the build to the end. One file per stage, no
    token written twice."""
    quiet_notifier(dirs["home"])
    main_queue = f"main-{uuid.uuid4().hex[:8]}"
    host_queue = f"{main_queue}-box"
    routes = ",".join(f"{agent}={host_queue}" for agent in ("claudebox", "security-agent",
                                                            "dev"))
    cfg = load_config(worker_env(server, dirs, TASK_QUEUE=main_queue, AGENT_QUEUES=routes))
    place = host_dirs(tmp_path, "box")
    host_env = host_worker_env(server, place, host_queue, main_queue)
    twins = [WorkerProcess(host_env, tmp_path / f"twin-{n}.log") for n in (1, 2)]
    hold = {"on": True}
    behaviours = {"build_plan": lambda d, p: None if hold["on"] else ("success", "built"),
                  "security_audit": triage_writer(place["audit"], {"flags": ["f1"]})}
    for twin in twins:
        twin.start()
    try:
        await asyncio.gather(*(twin.wait_event("worker_started") for twin in twins))
        async with running_worker(client, cfg), AgentSim(place["tasks"], host_env,
                                                         behaviours):
            handle = await start_pipeline(client, main_queue, dirs["tasks"], "twins")
            await eventually(lambda: files_of_type(place["tasks"], "build_plan"), 60)
            writer = await eventually(lambda: _dispatcher_of(twins, "build_plan"), 30)
            writer.kill()
            hold["on"] = False
            result = await handle.result()
    finally:
        for twin in twins:
            await twin.stop()
    documents = stage_files(place["tasks"])
    assert Counter(d["task_type"] for d in documents) == {kind: 1 for kind in STAGES}
    assert redispatches(documents) == []
    assert {d["status"] for d in documents} == {"completed"}
    assert Path(result.summary_path).exists()


def _dispatcher_of(workers: list[WorkerProcess], task_type: str) -> WorkerProcess | None:
    """The worker whose log says it wrote the TASK_TYPE stage's task file."""
    for worker in workers:
        if any(event.get("event") == "task_dispatched" and event.get("task_type") == task_type
               for event in worker.events()):
            return worker
    return None


async def test_two_main_workers_one_killed_while_parked(client: Client, server, dirs, tmp_path):
    """Two main workers on one queue and directory; builds park for a decision; one worker
    is SIGKILLed; the file approval is applied once by the other and every build ends."""
    quiet_notifier(dirs["home"])
    env = worker_env(server, dirs)
    mains = [WorkerProcess(env, tmp_path / f"main-{n}.log") for n in (1, 2)]
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["b1"]})}
    for main in mains:
        main.start()
    try:
        await asyncio.gather(*(main.wait_event("worker_started") for main in mains))
        async with AgentSim(dirs["tasks"], env, behaviours):
            handles = [await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"],
                                            f"parked-{n}") for n in range(3)]
            for handle in handles:
                await reaches_stage(handle, "wait", 120)
            mains[0].kill()
            for handle in handles:
                origin = (await (await handle.describe()).memo())["awaiting_task_id"]
                override(dirs["tasks"], origin, "approved", "operator", "go on")
            results = [await handle.result() for handle in handles]
            for handle in handles:  # queried while the surviving worker still runs
                assert (await progress_of(handle)).decision == "approved"
    finally:
        for main in mains:
            await main.stop()
    documents = stage_files(dirs["tasks"])
    assert Counter(d["task_type"] for d in documents) == {
        "build_prefab": 3, "build_plan": 3, "security_audit": 3, "build_closeout": 3}
    assert redispatches(documents) == []
    for result in results:
        assert Path(result.summary_path).exists()


async def test_host_stopped_before_its_stage_is_noticed_and_never_holds_the_build(
        client: Client, server, dirs, tmp_path):
    """The box host stops just before its stage is queued (the server still counts its
    poller): the workflow keeps looking and reports it. Later the box host is down when its
    finished stage's file is to be settled: the build ends anyway, and the file ends
    terminal once the host is back."""
    quiet_notifier(dirs["home"])
    main_queue = f"main-{uuid.uuid4().hex[:8]}"
    box_queue = f"{main_queue}-box"
    env = worker_env(server, dirs, TASK_QUEUE=main_queue, AGENT_QUEUES=f"claudebox={box_queue}")
    place = host_dirs(tmp_path, "box")
    box_env = host_worker_env(server, place, box_queue, main_queue)
    main_agents = {"security_audit": triage_writer(dirs["audit"], {})}
    hold = {"on": True}
    box_agent = {"build_prefab": lambda d, p: None if hold["on"] else ("success", "scaffold")}
    async with started_worker(box_env, tmp_path / "box-1.log"):
        # the box host polls, then stops: the server goes on counting its poller for 90 s
        await eventually(lambda: live_pollers(client, box_queue), 30)
    # The agent completes by token from a shell whose TASK_QUEUE_DIR is elsewhere, so its CLI
    # cannot mark the file: only the box host's worker can settle it.
    agent_env = {**box_env, "TASK_QUEUE_DIR": str(tmp_path / "elsewhere")}
    async with running_worker(client, load_config(env)), \
            AgentSim(dirs["tasks"], env, main_agents), AgentSim(place["tasks"], agent_env,
                                                                box_agent):
        handle = await start_pipeline(client, main_queue, dirs["tasks"], "box-stops")
        await eventually(lambda: _unpolled(handle), 180)
        code, out, _ = await buildctl(env, "status", handle.id)
        assert code == 0 and f"host queue: {box_queue} (no worker polling (last poll" in out
        async with started_worker(box_env, tmp_path / "box-2.log"):
            await eventually(lambda: files_of_type(place["tasks"], "build_prefab"), 60)
        hold["on"] = False  # the agent finishes with the box host's worker down
        result = await handle.result()
        assert Path(result.summary_path).exists()
        prefab = files_of_type(place["tasks"], "build_prefab")[0]
        assert prefab["status"] == "submitted"  # no worker on the box host to settle it yet
        async with started_worker(box_env, tmp_path / "box-3.log"):
            settled = await eventually(
                lambda: [d for d in files_of_type(place["tasks"], "build_prefab")
                         if d["status"] == "completed"], 60)
    assert "while this host's worker was away" in settled[0]["history"][-1]["note"]


async def _unpolled(handle: WorkflowHandle) -> Progress | None:
    progress = await progress_of(handle)
    return progress if progress.queue_unpolled else None


def _token(workflow_id: str, run_id: str) -> str:
    """A task token as the server encodes one (workflow id, run id, scheduled event, activity
    id), base64: what an agent can forge."""
    def text(field: int, value: str) -> bytes:
        data = value.encode()
        return bytes([field << 3 | 2, len(data)]) + data

    raw = text(2, workflow_id) + text(3, run_id) + bytes([4 << 3, 5]) + text(6, "5")
    return base64.b64encode(raw).decode()


def _old_stage_file(task_dir: Path, name: str, token: str) -> Path:
    """An open stage file of ours, untouched for an hour, holding TOKEN."""
    path = task_dir / name
    write_private(path, dump({
        "id": str(uuid.uuid4()), "source_agent": "temporal-worker",
        "target_agent": "claudebox", "task_type": "build_prefab", "status": "submitted",
        "payload": {"task_token": token}, "history": []}))
    old = time.time() - 3600
    os.utime(path, (old, old))
    return path


async def test_a_forged_token_never_stops_a_host_workers_sweep(client: Client, server, dirs,
                                                              tmp_path, caplog):
    """A stage file whose token names a workflow that does not exist raised an uncaught "not
    found" on every pass of a host worker's sweep: each file is handled on its own."""
    main_queue = f"main-{uuid.uuid4().hex[:8]}"
    place = host_dirs(tmp_path, "box")
    place["tasks"].mkdir(parents=True)
    cfg = load_config(host_worker_env(server, place, f"{main_queue}-box", main_queue))
    ended = await start_pipeline(client, f"nobody-{uuid.uuid4().hex[:8]}", dirs["tasks"])
    await ended.terminate("its stage's file is settled by the host's sweep")
    run_id = (await ended.describe()).run_id
    forged = [_old_stage_file(place["tasks"], "20260101-000000-aaaaaaaa.yml",
                              _token("no-such-workflow", str(uuid.uuid4()))),
              _old_stage_file(place["tasks"], "20260101-000001-bbbbbbbb.yml",
                              _token(ended.id, str(uuid.uuid4())))]
    real = _old_stage_file(place["tasks"], "20260102-000000-cccccccc.yml",
                           _token(ended.id, run_id))
    async with worker_without_sweep(client, cfg) as sweeper:
        assert not sweeper.main
        assert await sweeper.sweep() == 1  # the real one, whatever the forged ones hold
        assert await sweeper.sweep() == 0
    assert yaml.safe_load(real.read_text())["status"] == "cancelled"
    for path in forged:
        assert yaml.safe_load(path.read_text())["status"] == "submitted"
    unusable = [r for r in caplog.records if r.getMessage() == "stage_file_unusable"]
    assert len(unusable) == 2 and all("NOT_FOUND" in r.error for r in unusable)  # once each
    assert not [r for r in caplog.records if r.getMessage() == "sweep_failed"]
