"""The agents' hand-off over Temporal's HTTP API against today's gRPC CLI and the import
floors, in one run (issue 39's rows): the CLI's wall, CPU and peak RSS, the hand-off from the
CLI's start to the next task file, the heartbeat CLI, and throughput with the agents
finishing through the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from temporalio.client import Client

from bench.context import Bench
from bench.measure import SAMPLE_GAP, ms
from bench.pipelines import stage_id
from bench.report import verdict
from taskdir.names import id_prefix
from testbed.agents import COMPLETE, AgentSim, triage_writer
from testbed.devserver import DevServer
from testbed.helpers import make_origin, start_pipeline

STDLIB_FLOOR = "import json, urllib.request"
SDK_FLOOR = "import temporalio.service"
TRANSPORTS = ("http", "grpc")
TIME = "/usr/bin/time"  # GNU time (Debian's `time` package): the child's own peak RSS


async def wait_file(directory: Path, task_id: str, timeout: float = 60) -> Path:
    """Poll (1 ms) for TASK_ID's task file, known by the id prefix its name carries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with os.scandir(directory) as entries:
            for entry in entries:
                if id_prefix(entry.name) == task_id[:8]:
                    return Path(entry.path)
        await asyncio.sleep(0.001)
    raise TimeoutError(f"no task file for {task_id} within {timeout}s")


@dataclass(frozen=True)
class Run:
    """One process: wall seconds, CPU seconds (user + system), peak RSS in MB."""

    wall: float
    cpu: float
    rss: float


async def timed(args: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ARGS to its end; its wall, CPU (wait4) and peak RSS, failing on a non-zero exit.
    The peak RSS is what /usr/bin/time reads for it: a child forked from this (large)
    process starts its count from our size, the one time's small process forks does not."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        process = subprocess.Popen([TIME, "-o", rss.name, "-f", "%M", *args], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = await asyncio.to_thread(os.wait4, process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{args[1]} exited {os.waitstatus_to_exitcode(status)}")
        peak = int(rss.read().split()[-1]) / 1024
    return Run(wall, usage.ru_utime + usage.ru_stime, peak)


def floor(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def http_rows(bench: Bench, server: DevServer, client: Client) -> None:
    """Every row of issue 39, HTTP and gRPC sampled alternately on one worker."""
    dirs = bench.dirs("http-handoff")
    worker, env = await bench.start_worker(server, dirs, BLOCK_CHECK_INTERVAL="30s")
    samples = 3 if bench.quick else 15
    runs: dict[str, list[Run]] = {key: [] for key in ("http", "grpc", "stdlib", "sdk", "beat")}
    handoffs: dict[str, list[float]] = {key: [] for key in TRANSPORTS}
    try:
        for _ in range(samples):
            for transport in TRANSPORTS:
                run, handoff = await cli_handoff(client, env, dirs, transport)
                runs[transport].append(run)
                handoffs[transport].append(handoff)
            runs["stdlib"].append(await timed(floor(STDLIB_FLOOR)))
            runs["sdk"].append(await timed(floor(SDK_FLOOR)))
        runs["beat"] = await heartbeat_runs(client, env, dirs, samples)
    finally:
        await worker.stop()
    cli_rows(bench, runs, handoffs)
    counts = [10, 30] if bench.quick else [50, 200]
    rates: dict[str, list[float]] = {transport: [] for transport in TRANSPORTS}
    for count in counts:  # the transports alternate: both see the same machine
        for transport in TRANSPORTS:
            rates[transport].append(await cli_throughput(bench, server, client, transport,
                                                         count))
    for index, count in enumerate(counts):
        ratio = rates["http"][index] / rates["grpc"][index]
        bench.row(f"Throughput, {count} concurrent pipelines, agents through the CLI: HTTP ÷ "
                  "gRPC", f"{ratio:.2f}× ({rates['http'][index]:.0f} vs "
                  f"{rates['grpc'][index]:.0f}/min)", "≥ 1.5× (at 50)",
                  verdict(ratio >= 1.5))


async def cli_handoff(client: Client, env: dict[str, str], dirs: dict[str, Path],
                      transport: str) -> tuple[Run, float]:
    """One pipeline's first stage finished by the CLI over TRANSPORT, as the task file says
    (`--task-file`): the CLI's process figures and CLI start → next task file."""
    origin = make_origin(dirs["tasks"])
    handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "bench",
                                  task_id=origin)
    run_id = handle.result_run_id or ""
    prefab = await wait_file(dirs["tasks"], stage_id(run_id, "build_prefab"))
    started = time.perf_counter()
    run = await timed([sys.executable, COMPLETE, "--task-file", str(prefab), "success",
                       "bench"], {**env, "AGENT_TRANSPORT": transport})
    await wait_file(dirs["tasks"], stage_id(run_id, "build_plan"))
    handoff = time.perf_counter() - started
    await handle.terminate("bench")
    await asyncio.sleep(SAMPLE_GAP)  # agents are not back to back
    return run, handoff


async def heartbeat_runs(client: Client, env: dict[str, str], dirs: dict[str, Path],
                         samples: int) -> list[Run]:
    handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "beats")
    prefab = await wait_file(dirs["tasks"], stage_id(handle.result_run_id or "",
                                                     "build_prefab"))
    try:
        return [await timed([sys.executable, COMPLETE, "heartbeat", "--task-file", str(prefab),
                             "bench"], {**env, "AGENT_TRANSPORT": "http"})
                for _ in range(samples)]
    finally:
        await handle.terminate("bench")


def cli_rows(bench: Bench, runs: dict[str, list[Run]], handoffs: dict[str, list[float]]
             ) -> None:
    def mid(key: str, what: str) -> float:
        return median([getattr(run, what) for run in runs[key]])

    for what, label in (("wall", "wall"), ("cpu", "CPU")):
        http, stdlib, sdk = mid("http", what), mid("stdlib", what), mid("sdk", what)
        bench.row(f"Agents' CLI over HTTP, {label} ÷ `python -c '{STDLIB_FLOOR}'`",
                  f"{http / stdlib:.2f}× ({ms(http)} vs {ms(stdlib)})",
                  "≤ 1.3×" if what == "wall" else "report",
                  "-" if what != "wall" else verdict(http <= 1.3 * stdlib))
        bench.row(f"Agents' CLI over HTTP, {label} ÷ `python -c '{SDK_FLOOR}'`",
                  f"{http / sdk:.2f}× ({ms(http)} vs {ms(sdk)}; gRPC CLI "
                  f"{ms(mid('grpc', what))})", "≤ 0.45×" if what == "wall" else "report",
                  "-" if what != "wall" else verdict(http <= 0.45 * sdk))
    rss = mid("http", "rss")
    bench.row("Agents' CLI over HTTP, peak RSS", f"{rss:.1f} MB (stdlib floor "
              f"{mid('stdlib', 'rss'):.1f}, SDK import {mid('sdk', 'rss'):.1f}, gRPC CLI "
              f"{mid('grpc', 'rss'):.1f} MB)", "≤ 30 MB", verdict(rss <= 30))
    http, grpc = median(handoffs["http"]), median(handoffs["grpc"])
    bench.row("Hand-off, CLI start → next task file: HTTP ÷ gRPC CLI",
              f"{http / grpc:.2f}× ({ms(http)} vs {ms(grpc)})", "≤ 0.6×",
              verdict(http <= 0.6 * grpc))
    beat, stdlib = mid("beat", "wall"), mid("stdlib", "wall")
    bench.row(f"Heartbeat CLI over HTTP, wall ÷ `python -c '{STDLIB_FLOOR}'`",
              f"{beat / stdlib:.2f}× ({ms(beat)} vs {ms(stdlib)})", "report", "-")


@dataclass
class CliAgents(AgentSim):
    """Agents that each finish through their own CLI process, all at once (AgentSim runs
    one CLI at a time)."""

    running: set[asyncio.Task[Any]] = field(default_factory=set)

    async def complete(self, token: str, status: str, message: str,
                       path: Path | None = None) -> bool:
        task = asyncio.create_task(self.finish(token, status, message, path))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return True

    async def finish(self, token: str, status: str, message: str, path: Path | None) -> None:
        """One agent's CLI; an error stops the burst with its message (never a hang)."""
        try:
            await AgentSim.complete(self, token, status, message, path)
        except Exception as err:
            self._fail(f"{type(err).__name__}: {err}")


async def cli_throughput(bench: Bench, server: DevServer, client: Client, transport: str,
                         count: int) -> float:
    """Builds per minute of COUNT pipelines at once, every stage finished through the CLI
    over TRANSPORT (a worker of its own)."""
    dirs = bench.dirs(f"cli-throughput-{transport}-{count}")
    worker, env = await bench.start_worker(server, dirs, BLOCK_CHECK_INTERVAL="30s")
    env = {**env, "AGENT_TRANSPORT": transport}
    try:
        clean = {"security_audit": triage_writer(dirs["audit"], {})}
        async with CliAgents(dirs["tasks"], env, clean, interval=0.02, by_file=True):
            started = time.perf_counter()
            handles = [await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"],
                                            f"cli-{transport}-{i:04d}") for i in range(count)]
            await asyncio.gather(*(handle.result() for handle in handles))
            return count / (time.perf_counter() - started) * 60
    finally:
        await worker.stop()
