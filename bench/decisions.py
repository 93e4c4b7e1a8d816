"""The decision phase: how soon an operator's decision (a signal, or the task file's
status) reaches the next task file."""

from __future__ import annotations

import time

from temporalio.client import Client

from bench.context import Bench
from bench.measure import ms, p99
from bench.pipelines import park, stage_id, terminate_all, wait_file
from bench.report import verdict
from models import BlockDecision
from taskdir import TaskDirectory
from testbed.devserver import DevServer
from workflows.build_pipeline import BuildPipelineWorkflow


async def decisions(bench: Bench, server: DevServer, client: Client) -> None:
    """Parked pipelines released by a signal, then by their task file's status."""
    count = 5 if bench.quick else 30
    interval = 1.0
    dirs = bench.dirs("decisions")
    worker, env = await bench.start_worker(server, dirs,
                                           BLOCK_CHECK_INTERVAL=f"{interval}s")
    try:
        handles = await park(client, env["TASK_QUEUE"], dirs, count, env)
        signal_lat = []
        for handle in handles:
            started = time.perf_counter()
            await handle.signal(BuildPipelineWorkflow.approve, BlockDecision(by="bench"))
            await wait_file(dirs["tasks"],
                            stage_id(handle.result_run_id or "", "build_closeout"))
            signal_lat.append(time.perf_counter() - started)
        more = await park(client, env["TASK_QUEUE"], dirs, 2 if bench.quick else 5,
                          env)
        file_lat = []
        for handle in more:
            origin = (await (await handle.describe()).memo())["awaiting_task_id"]
            tasks = TaskDirectory(dirs["tasks"])
            assert tasks.find(origin) is not None
            started = time.perf_counter()
            tasks.set_status(origin, "approved", "bench")
            await wait_file(dirs["tasks"],
                            stage_id(handle.result_run_id or "", "build_closeout"))
            file_lat.append(time.perf_counter() - started)
        await terminate_all(handles + more)
    finally:
        await worker.stop()
    bench.row("Decision: signal `approve` → next task file (p99)", ms(p99(signal_lat)),
              "< 1000 ms", verdict(p99(signal_lat) < 1))
    bench.row("Decision: task file `approved` → next task file (max)", ms(max(file_lat)),
              f"≤ interval {interval:g} s + 1 s",
              verdict(max(file_lat) <= interval + 1))
