"""The heartbeat phase: the heartbeat CLI against its import floor, and what agents'
heartbeats cost the worker."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time

from temporalio.client import Client

from bench.context import Bench
from bench.measure import cpu_seconds, median, ms
from bench.pipelines import stage_id, token_of, wait_file
from bench.report import verdict
from testbed.devserver import DevServer
from testbed.helpers import start_pipeline
from testbed.processes import ROOT


async def heartbeats(bench: Bench, server: DevServer, client: Client) -> None:
    """The heartbeat CLI's wall time against its import floor, and what 1,000 heartbeats
    cost the worker (they go to the server, not to the worker)."""
    from temporalio.api.workflowservice.v1 import RecordActivityTaskHeartbeatRequest

    dirs = bench.dirs("heartbeats")
    worker, env = await bench.start_worker(server, dirs)
    samples, beats = (3, 100) if bench.quick else (15, 1000)
    try:
        handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "beats")
        prefab = await wait_file(dirs["tasks"], stage_id(handle.result_run_id or "",
                                                         "build_prefab"))
        walls, floors = [], []
        for _ in range(samples):
            started = time.perf_counter()
            await asyncio.to_thread(subprocess.run, [
                sys.executable, str(ROOT / "complete_activity.py"), "heartbeat",
                "--task-file", str(prefab), "bench"], env=env, check=True,
                stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - started)
            started = time.perf_counter()
            await asyncio.to_thread(subprocess.run, [sys.executable, "-c",
                                                     "import temporalio.service"],
                                    check=True)
            floors.append(time.perf_counter() - started)
        ratio = median(walls) / median(floors)
        bench.row("Heartbeat CLI wall ÷ `python -c 'import temporalio.service'`",
                  f"{ratio:.2f}× ({ms(median(walls))} vs {ms(median(floors))})", "≤ 1.15×",
                  verdict(ratio <= 1.15))
        token = base64.b64decode(token_of(prefab))
        assert worker.process is not None
        before = cpu_seconds(worker.process.pid)
        for _ in range(beats):
            await client.workflow_service.record_activity_task_heartbeat(
                RecordActivityTaskHeartbeatRequest(task_token=token,
                                                   namespace=client.namespace))
        spent = (cpu_seconds(worker.process.pid) - before) * 1000 / beats
        bench.row("Worker CPU per 1,000 agent heartbeats", f"{spent * 1000:.0f} ms",
                  "~0 (heartbeats go to the server)", verdict(spent < 0.5))
        await handle.terminate("bench")
    finally:
        await worker.stop()
