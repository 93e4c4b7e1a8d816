"""The capacity phase: the worker's memory with pipelines parked, against the floors', and
a fresh hand-off while they wait."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from temporalio.client import Client

from bench.context import Bench
from bench.floor_client import Floor
from bench.measure import median, ms, rss_mb
from bench.pipelines import fresh_handoffs, park, settle, terminate_all
from bench.report import verdict
from testbed.cluster import TemporalCluster
from testbed.devserver import DevServer

FEW_PARKED = 120  # the parked count v0.5 was measured with (91 MB)


async def capacity(bench: Bench, server: DevServer, client: Client) -> None:
    """The memory rows on the dev server; the cluster phase compares with its figures."""
    count = bench.parked_count()
    got = await parked_capacity(bench, server, client, "capacity", count)
    rss, before, during = got["rss"], median(got["before"]), median(got["during"])
    bench.on_dev = {"rss": rss, "idle": before, "during": during}
    # One decimal: the verdict is on the exact figure, and a rounded one can hide a miss.
    bench.row(f"Worker RSS with {got['few']} pipelines parked (idle {got['idle_rss']:.1f} MB)",
              f"{got['few_rss']:.1f} MB", "≤ 88 MB (v0.5: 91)",
              verdict(got["few_rss"] <= 88))
    idle, parked = await floor_parked(bench, server, got["few"], stages=False)
    bench.row(f"Floor worker RSS idle / with {got['few']} runs parked (the SDK, a plain "
              "client, no code of ours)", f"{idle:.0f} / {parked:.0f} MB", "reference",
              f"ours above it: {got['idle_rss'] - idle:+.0f} / "
              f"{got['few_rss'] - parked:+.0f} MB")
    lib_idle, shaped = await floor_parked(bench, server, got["few"], stages=True,
                                          libraries=True)
    bench.row(f"Floor worker with the required libraries (pydantic, PyYAML) RSS idle / with "
              f"{got['few']} runs of a blocked pipeline's commands parked "
              "(`FloorStagesWorkflow`)", f"{lib_idle:.0f} / {shaped:.0f} MB", "reference",
              f"ours above it: {got['idle_rss'] - lib_idle:+.0f} / "
              f"{got['few_rss'] - shaped:+.0f} MB")
    bench.row(f"Worker RSS with {count} pipelines parked", f"{rss:.0f} MB", "< 300 MB",
              verdict(rss < 300))
    bench.row("Worker RSS per 1,000 parked (above idle)",
              f"{(rss - got['idle_rss']) / count * 1000:.0f} MB", "report", "-")
    bench.row(f"Fresh hand-off while {count} parked ÷ idle (median)",
              f"{during / before:.2f}× ({ms(during)} vs {ms(before)})", "≤ 1.5×",
              verdict(during <= 1.5 * before))


async def parked_capacity(bench: Bench, server: DevServer | TemporalCluster, client: Client,
                          name: str, count: int) -> dict[str, Any]:
    """Worker RSS MB idle, with FEW_PARKED and with COUNT parked; fresh hand-offs before
    and during."""
    dirs = bench.dirs(name)
    worker, env = await bench.start_worker(
        server, dirs, BLOCK_CHECK_INTERVAL="30s",
        MAX_CACHED_WORKFLOWS=os.environ.get("MAX_CACHED_WORKFLOWS", "500"))
    samples = 5 if bench.quick else 9
    try:
        await asyncio.sleep(2.0)  # as for the idle row: the start's tail settles
        figures: dict[str, Any] = {"idle_rss": rss_mb(worker)}
        figures["before"] = await fresh_handoffs(client, env, dirs, samples)
        figures["few"] = few = min(FEW_PARKED, count // 2)
        handles = await park(client, env["TASK_QUEUE"], dirs, few, env)
        await settle(handles)
        figures["few_rss"] = rss_mb(worker)
        handles += await park(client, env["TASK_QUEUE"], dirs, count - few, env)
        await settle(handles)
        figures["rss"] = rss_mb(worker)
        figures["during"] = await fresh_handoffs(client, env, dirs, samples)
        await terminate_all(handles)
    finally:
        await worker.stop()
    return figures


async def floor_parked(bench: Bench, server: DevServer, count: int, stages: bool,
                       libraries: bool = False) -> tuple[float, float]:
    """A fresh floor worker's RSS MB idle and with COUNT runs parked: one activity each,
    or (STAGES) a blocked pipeline's commands each; LIBRARIES: pydantic and PyYAML loaded."""
    floor = Floor(server.address,
                  bench.base / f"floor-memory{'-stages' if stages else ''}", libraries)
    await floor.start()
    try:
        await asyncio.sleep(2.0)
        idle = floor.rss()
        await (floor.park_stages(count) if stages else floor.park(count))
        await asyncio.sleep(1.0)
        return idle, floor.rss()
    finally:
        floor.stop()
