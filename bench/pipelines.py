"""Our pipelines as the phases drive them: one started and handed over (a sample), many
parked on a decision, their task files waited for, and what is left terminated."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client
from temporalio.service import RPCError

from bench.measure import SAMPLE_GAP
from stages import stage_named
from taskdir import file_name
from taskdir.names import stage_task_id
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import make_origin, start_pipeline
from testbed.processes import ROOT


def stage_id(run_id: str, kind: str) -> str:
    """The task id our workflow gives stage KIND of RUN_ID."""
    return stage_task_id(run_id, stage_named(kind).task_key())


async def wait_file(directory: Path, task_id: str, timeout: float = 60) -> Path:
    """Poll (1 ms) for the task file of TASK_ID; cheap: only names of recent seconds are tried."""
    started = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for second in range(int(started) - 2, int(time.time()) + 1):
            moment = datetime.fromtimestamp(second, UTC)
            path = directory / file_name(task_id, moment)
            if path.exists():
                return path
        await asyncio.sleep(0.001)
    raise TimeoutError(f"no task file for {task_id} within {timeout}s")


def token_of(path: Path) -> str:
    """The task token a stage's task file carries, as an agent reads it."""
    return yaml.safe_load(path.read_text())["payload"]["task_token"]


async def run_cli_timed(token: str, env: dict[str, str]) -> tuple[float, int]:
    """Run the agents' CLI; return (wall seconds, peak RSS KiB) of that process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "complete_activity.py"), token,
                                "success", "bench"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, status, usage = await asyncio.to_thread(os.wait4, process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"complete_activity.py exited {process.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss


async def our_sample(client: Client, env: dict[str, str], dirs: dict[str, Path],
                     figures: dict[str, list[float]], key: str,
                     start_key: str | None = None) -> None:
    """Start a pipeline (start → first task file, kept under START_KEY), then hand its
    first stage over (under KEY; through the agents' CLI when KEY is "cli", else in
    process). The originating request is written first: it is there before any build
    starts."""
    origin = make_origin(dirs["tasks"])
    started = time.perf_counter()
    handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "bench",
                                  task_id=origin)
    run_id = handle.result_run_id or ""
    prefab = await wait_file(dirs["tasks"], stage_id(run_id, "build_prefab"))
    if start_key is not None:
        figures[start_key].append(time.perf_counter() - started)
    token = token_of(prefab)
    started = time.perf_counter()
    if key != "cli":
        await client.get_async_activity_handle(task_token=base64.b64decode(token)).complete(
            {"status": "success", "output": "bench"})
    else:
        wall, rss = await run_cli_timed(token, env)
        figures["cli_wall"].append(wall)
        figures["cli_rss"].append(rss)
    await wait_file(dirs["tasks"], stage_id(run_id, "build_plan"))
    figures[key].append(time.perf_counter() - started)
    await handle.terminate("bench")
    await asyncio.sleep(SAMPLE_GAP)


async def fresh_handoffs(client: Client, env: dict[str, str],
                         dirs: dict[str, Path], samples: int) -> list[float]:
    """SAMPLES in-process hand-offs of fresh pipelines, one at a time (seconds each)."""
    figures: dict[str, list[float]] = {"fresh": []}
    for _ in range(samples):
        await our_sample(client, env, dirs, figures, "fresh")
    return figures["fresh"]


async def park(client: Client, queue: str, dirs: dict[str, Path], count: int,
               env: dict[str, str]) -> list[Any]:
    """COUNT pipelines parked on a block (their triage asks for a decision), once each waits."""
    blocked = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["decide"]})}
    handles = []
    async with AgentSim(dirs["tasks"], env, blocked, client=client, interval=0.2):
        for index in range(count):
            handles.append(await start_pipeline(client, queue, dirs["tasks"],
                                                f"park-{index:04d}"))
        for handle in handles:
            while True:
                memo = await (await handle.describe()).memo()
                if memo.get("awaiting_task_id"):
                    break
                await asyncio.sleep(0.2)
    return handles


async def settle(handles: list[Any]) -> None:
    """Wait until parked pipelines run nothing (their last check activity has finished)."""
    for handle in handles:
        while (await handle.describe()).raw_description.pending_activities:
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # let the server's and worker's tail work (visibility, GC) drain


async def terminate_all(handles: list[Any]) -> None:
    """Terminate what is still running (some finished while other agents were active)."""
    for handle in handles:
        with contextlib.suppress(RPCError):
            await handle.terminate("bench")
