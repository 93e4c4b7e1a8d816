"""The throughput phase: builds per minute in bursts with instant agents, and the memory
the worker keeps after them, against the floor's."""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client

from allocator import TRIM_INTERVAL
from bench.context import Bench
from bench.floor_client import Floor
from bench.measure import rss_mb
from bench.report import verdict
from testbed.agents import AgentSim, triage_writer
from testbed.cluster import TemporalCluster
from testbed.devserver import DevServer
from testbed.helpers import start_pipeline


async def throughput(bench: Bench, server: DevServer, client: Client) -> None:
    """Bursts of 50 and 200 at once, then more to 1,000 builds; RSS after them (once
    the worker has handed its freed heap back) against its idle RSS."""
    # 1,000 builds, never more than 200 at once (the largest burst measured above).
    bursts = [10, 30, 60] if bench.quick else [50, 200, 200, 200, 200, 150]
    rates, idle, after = await burst_rates(bench, server, client, "throughput", bursts)
    for count, rate in zip(bursts[:2], rates, strict=False):
        bench.row(f"Throughput, {count} concurrent pipelines, instant agents",
                  f"{rate:.0f} pipelines/min", "≥ 76/min (2 × v0.5's 38 at 50)",
                  verdict(rate >= 76))
    bench.dev_rates = rates
    done = sum(bursts)
    bench.row(f"Worker RSS after {done} builds completed ÷ idle",
              f"{after / idle:.2f}× ({after:.0f} vs {idle:.0f} MB)", "≤ 1.10×",
              verdict(after <= 1.1 * idle))
    floor = Floor(server.address, bench.base / "floor-bursts")
    await floor.start()
    try:
        await asyncio.sleep(2.0)
        floor_idle = floor.rss()
        await floor.bursts(bursts)
        await asyncio.sleep(2.0)
        floor_after = floor.rss()
    finally:
        floor.stop()
    bench.row(f"Floor worker RSS after {done} runs in the same bursts ÷ idle (the SDK, no "
              "code of ours)", f"{floor_after / floor_idle:.2f}× ({floor_after:.0f} vs "
              f"{floor_idle:.0f} MB)", "reference", "-")


async def burst_rates(bench: Bench, server: DevServer | TemporalCluster, client: Client,
                      name: str, bursts: list[int],
                      rss_after: bool = True) -> tuple[list[float], float, float]:
    """Builds per minute of the first two bursts (instant agents, the production sweep
    interval), the worker's RSS idle and (RSS_AFTER) after all of them, one trim period
    later."""
    dirs = bench.dirs(name)
    # The production sweep interval (the tests' 0.5 s would be a sweep per hand-off).
    worker, env = await bench.start_worker(server, dirs, BLOCK_CHECK_INTERVAL="30s")
    done, rates = 0, []
    try:
        await asyncio.sleep(2.0)
        idle = rss_mb(worker)
        clean = {"security_audit": triage_writer(dirs["audit"], {})}
        async with AgentSim(dirs["tasks"], env, clean, client=client, interval=0.02):
            for count in bursts:
                started = time.perf_counter()
                handles = [await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"],
                                                f"tp-{done + i:04d}") for i in range(count)]
                await asyncio.gather(*(h.result() for h in handles))
                rates.append(count / (time.perf_counter() - started) * 60)
                done += count
        if rss_after:
            await asyncio.sleep(TRIM_INTERVAL + 2)  # one hand-back of freed heap, at most
        return rates[:2], idle, rss_mb(worker)
    finally:
        await worker.stop()
