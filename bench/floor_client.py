"""The floor workflow's worker process (bench/floor.py) as the phases drive it: started
from here, sampled one run at a time, parked or run in bursts, its CPU and memory read."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml
from temporalio.client import Client

from bench.measure import SAMPLE_GAP, cpu_seconds, rss_of
from bootstrap import ALLOCATOR_ENV
from testbed.processes import ROOT

# The floor runs with our worker's allocator environment: its memory rows then differ from
# ours by code alone.
FLOOR_ENV = {**os.environ, **ALLOCATOR_ENV}


CONTRACT_FLOOR = "FloorContractWorkflow"  # one local activity, files written as the contract asks
MEMO_FLOOR = "FloorMemoWorkflow"  # a memo upsert with each activity, as our hand-offs


class Floor:
    """The floor workflow's worker process (bench/floor.py), sampled one run at a time."""

    def __init__(self, address: str, directory: Path, libraries: bool = False) -> None:
        self.address = address
        self.directory = directory
        self.libraries = libraries  # also load pydantic and PyYAML (bench/floor.py)
        self.queue = f"floor-{uuid.uuid4().hex[:6]}"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None

    async def start(self) -> None:
        """Start the floor's process and connect once it says it polls."""
        self.directory.mkdir()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", self.address, self.queue,
             str(self.directory), *(["--libraries"] if self.libraries else [])],
            cwd=ROOT, stdout=subprocess.PIPE, env=FLOOR_ENV)
        assert self.process.stdout is not None
        await asyncio.to_thread(self.process.stdout.readline)
        self.client = await Client.connect(self.address)  # the floor's own plain client

    def cpu(self) -> float:
        """CPU seconds the floor's process has used, as ours is counted."""
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    async def sample(self, workflow_type: str, label: str) -> tuple[float, float]:
        """(start → first activity, async completion → next activity's file) of one run."""
        assert self.client is not None
        token_file = self.directory / f"{label}.token"
        started = time.perf_counter()
        await self.client.start_workflow(workflow_type, label, id=f"{self.queue}-{label}",
                                         task_queue=self.queue)
        while not token_file.exists() or not token_file.stat().st_size:
            await asyncio.sleep(0.001)
        start = time.perf_counter() - started
        token = token_file.read_bytes()
        if workflow_type == CONTRACT_FLOOR:  # a YAML file, as ours (bench/floor.py)
            token = base64.b64decode(yaml.safe_load(token)["task_token"])
        started = time.perf_counter()
        await self.client.get_async_activity_handle(task_token=token).complete("ok")
        while not (self.directory / f"{label}.next").exists():
            await asyncio.sleep(0.001)
        handoff = time.perf_counter() - started
        await asyncio.sleep(SAMPLE_GAP)
        return start, handoff

    def rss(self) -> float:
        """The floor process's resident set in MB."""
        assert self.process is not None
        return rss_of(self.process.pid)

    async def park(self, count: int) -> None:
        """COUNT runs waiting on their async activity, as parked builds wait on a decision."""
        assert self.client is not None
        for index in range(count):
            await self.client.start_workflow("FloorWorkflow", f"p{index}",
                                             id=f"{self.queue}-p{index}", task_queue=self.queue)
        for index in range(count):
            token = self.directory / f"p{index}.token"
            while not token.exists() or not token.stat().st_size:
                await asyncio.sleep(0.01)

    async def park_stages(self, count: int) -> None:
        """COUNT runs of the pipeline's parked shape (FloorStagesWorkflow), taken through
        their first four waits, as parked builds are through their stages."""
        assert self.client is not None
        names = [f"s{index}" for index in range(count)]
        for name in names:
            await self.client.start_workflow("FloorStagesWorkflow", name,
                                             id=f"{self.queue}-{name}", task_queue=self.queue)
        for step in range(5):
            for name in names:
                token = self.directory / f"{name}-{step}.token"
                while not token.exists() or not token.stat().st_size:
                    await asyncio.sleep(0.01)
                if step < 4:
                    await self.client.get_async_activity_handle(
                        task_token=token.read_bytes()).complete("ok")

    async def bursts(self, counts: list[int]) -> None:
        """Runs COUNTS at once in turn, each completed through its token, to the end."""
        assert self.client is not None
        done = 0
        for count in counts:
            names = [f"b{done + index}" for index in range(count)]
            for name in names:
                await self.client.start_workflow("FloorWorkflow", name, id=f"{self.queue}-{name}",
                                                 task_queue=self.queue)
            for name in names:
                token = self.directory / f"{name}.token"
                while not token.exists() or not token.stat().st_size:
                    await asyncio.sleep(0.01)
                await self.client.get_async_activity_handle(
                    task_token=token.read_bytes()).complete("ok")
            for name in names:
                while not (self.directory / f"{name}.next").exists():
                    await asyncio.sleep(0.01)
            done += count

    def stop(self) -> None:
        """End the floor's process (it is ours: started by start())."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
