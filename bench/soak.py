"""A soak on the production-shaped bed: `python -m bench.soak [--minutes 20] [--output FILE]`.

The real server on PostgreSQL with two history/matching nodes (testbed/cluster.py), a main
worker and a host worker (the security agent's) as processes, and a steady stream of
pipelines completed by agents on both hosts. Every few minutes one fault, at random: the main
worker or the host worker is SIGKILLed and started again (as PM2 does), or history node b is
SIGKILLed and started again. Mixed in: builds with blocks (approved or rejected by signal)
and builds cancelled while an agent holds them. At the end it reports builds by outcome (and
lost ones), duplicated stage files, hand-off latency before / during / after faults, and the
workers' RSS over time, and writes that section into docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from bench.measure import median, ms, p99, rss_mb
from contract import completion, decode_token, token_text
from models import BlockDecision
from taskdir import UNREADABLE, load
from testbed.cluster import TemporalCluster
from testbed.devserver import temporal_cli
from testbed.helpers import (
    connect_client,
    host_dirs,
    host_worker_env,
    quiet_notifier,
    start_pipeline,
    worker_env,
)
from testbed.processes import ROOT, WorkerProcess
from workflows.build_pipeline import BuildPipelineWorkflow

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
FAULT_WINDOW = 60.0  # seconds after a fault whose hand-offs count as "during"


@dataclass
class Soak:
    """The run's state: builds, agents' bookkeeping, faults and samples."""

    client: Client
    task_dirs: list[Path]
    handles: dict[str, WorkflowHandle] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # build -> plain/blocked/cancelled
    done_at: dict[str, float] = field(default_factory=dict)  # build -> its last completion
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)
    faults: list[tuple[float, str]] = field(default_factory=list)
    rss: list[tuple[float, float, float]] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)
    jobs: set[asyncio.Task[None]] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    async def agents(self, audit_dirs: dict[Path, Path]) -> None:
        """Every host's agents: complete each new stage file (audits write a triage file;
        a cancelled build's stage is left alone; a blocked build's audit has a block)."""
        while True:
            for task_dir in self.task_dirs:
                for path in sorted(task_dir.glob("*.yml")):
                    if path.name in self.handled:
                        continue
                    try:
                        document = load(path)
                    except UNREADABLE:
                        continue
                    if document.get("status") != "submitted" or not token_text(document):
                        continue
                    self.handled.add(path.name)
                    job = asyncio.create_task(self._finish(document, audit_dirs.get(task_dir)))
                    self.jobs.add(job)
                    job.add_done_callback(self.jobs.discard)
            await asyncio.sleep(0.02)

    async def _finish(self, document: dict[str, Any], audit_dir: Path | None) -> None:
        build = str(document["payload"].get("build_name", ""))
        now = time.monotonic()
        if build in self.done_at and self.kinds.get(build) == "plain":  # no operator between
            self.latencies.append((now, now - self.done_at[build]))
        if self.kinds.get(build) == "cancelled" and build in self.handles:
            with contextlib.suppress(RPCError):
                await self.handles[build].cancel()
            return
        if document["task_type"] == "security_audit":
            out = Path(document["payload"]["output_dir"])
            out.mkdir(parents=True, exist_ok=True)
            blocks = ["soak block"] if self.kinds.get(build) == "blocked" else []
            (out / "triage-output.yml").write_text(yaml.safe_dump(
                {"blocks": blocks, "flags": [], "info": []}))
        handle = self.client.get_async_activity_handle(
            task_token=decode_token(token_text(document) or ""))
        for _ in range(120):  # an agent retries while the server is away
            try:
                await handle.complete(completion(f"{document['task_type']} done"))
                break
            except RPCError as err:
                if "not found" in str(err).lower():
                    return
                await asyncio.sleep(1)
        self.done_at[build] = time.monotonic()

    async def decide(self) -> None:
        """An operator: approve four in five parked builds, reject the fifth."""
        decided: set[str] = set()
        while True:
            for build, handle in list(self.handles.items()):
                if self.kinds[build] != "blocked" or build in decided:
                    continue
                with contextlib.suppress(Exception):  # a build that ended meanwhile, a hiccup
                    progress = await handle.query(BuildPipelineWorkflow.progress)
                    if progress.stage == "wait":
                        signal = (BuildPipelineWorkflow.reject if len(decided) % 5 == 4
                                  else BuildPipelineWorkflow.approve)
                        await handle.signal(signal, BlockDecision(by="soak-operator"))
                        decided.add(build)
            await asyncio.sleep(2)

    def phase(self, when: float) -> str:
        if not self.faults or when < self.faults[0][0]:
            return "before"
        if any(0 <= when - at <= FAULT_WINDOW for at, _ in self.faults):
            return "during"
        return "after"


async def stream(soak: Soak, origin_dir: Path, queue: str, until: float) -> None:
    """One new build every 4 s: one in five with blocks, one in ten cancelled."""
    n = 0
    while time.monotonic() < until:
        build = f"soak-{n:04d}"
        soak.kinds[build] = ("blocked" if n % 5 == 2 else "cancelled" if n % 10 == 4
                             else "plain")
        with contextlib.suppress(RPCError):
            soak.handles[build] = await start_pipeline(
                soak.client, queue, origin_dir, build)
        n += 1
        await asyncio.sleep(4)


async def faults(soak: Soak, bed: TemporalCluster, workers: dict[str, WorkerProcess],
                 until: float) -> None:
    """Every two to four minutes: kill one worker or history node b (each kind once per
    round, in a random order), and bring it back."""
    rng = random.Random(7)
    kinds: list[str] = []
    while True:
        await asyncio.sleep(rng.uniform(120, 240))
        if time.monotonic() > until:
            return
        if not kinds:  # each kind once per round, in a random order
            kinds = rng.sample(["main worker", "host worker", "history node b"], 3)
        what = kinds.pop()
        soak.faults.append((time.monotonic(), what))
        print(f"fault at {time.monotonic() - soak.started:.0f} s: {what}", flush=True)
        if what == "history node b":
            bed.kill_node("b")
            await asyncio.sleep(10)
            await asyncio.to_thread(bed.start_node, "b")
        else:
            worker = workers["main" if what == "main worker" else "host"]
            worker.kill()
            worker.start()  # as PM2 restarts it


async def sample_rss(soak: Soak, workers: dict[str, WorkerProcess]) -> None:
    while True:
        with contextlib.suppress(OSError, AssertionError):
            soak.rss.append((time.monotonic() - soak.started, rss_mb(workers["main"]),
                             rss_mb(workers["host"])))
        await asyncio.sleep(30)


async def outcomes(soak: Soak) -> Counter[str]:
    counts: Counter[str] = Counter()
    for handle in soak.handles.values():
        try:
            status = (await handle.describe()).status
        except RPCError:
            status = None
        counts[status.name.lower() if status else "unknown"] += 1
    return counts


def duplicates(task_dirs: list[Path]) -> int:
    """Stage files beyond one per build and stage (a stage written twice)."""
    seen: Counter[tuple[str, str]] = Counter()
    for task_dir in task_dirs:
        for path in task_dir.glob("*.yml"):
            with contextlib.suppress(*UNREADABLE):
                document = load(path)
                if document.get("source_agent") == "temporal-worker":
                    seen[(str(document["payload"].get("build_name")),
                          str(document["task_type"]))] += 1
    return sum(count - 1 for count in seen.values() if count > 1)


def report(soak: Soak, counts: Counter[str], dup: int, minutes: float) -> str:
    lost = counts.get("running", 0) + counts.get("unknown", 0)
    fault_list = ", ".join(f"{what} at {at - soak.started:.0f} s" for at, what in soak.faults)
    lines = [BEGIN, "## Soak", "",
             f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/python -m bench.soak "
             f"--minutes {minutes:g}` (PostgreSQL cluster, main and host worker processes, a "
             f"build every 4 s; faults every 2–4 min).", "",
             "| measure | figure |", "|---|---|",
             f"| builds started | {len(soak.handles)} |",
             f"| completed / failed (rejected) / cancelled | {counts.get('completed', 0)} / "
             f"{counts.get('failed', 0)} / {counts.get('canceled', 0)} |",
             f"| lost (still running after the drain, or unknown) | {lost} |",
             f"| duplicated stage files | {dup} |",
             f"| faults | {fault_list or 'none'} |"]
    for phase in ("before", "during", "after"):
        values = [seconds for when, seconds in soak.latencies if soak.phase(when) == phase]
        if values:
            lines.append(f"| hand-off {phase} faults, p50 / p99 (n={len(values)}) | "
                         f"{ms(median(values))} / {ms(p99(values))} |")
    if soak.rss:
        quarter = max(1, len(soak.rss) // 4)
        first, last = soak.rss[:quarter], soak.rss[-quarter:]
        lines.append("| worker RSS, main: first quarter → last quarter (max) | "
                     f"{median([r[1] for r in first]):.0f} → {median([r[1] for r in last]):.0f}"
                     f" MB ({max(r[1] for r in soak.rss):.0f}) |")
        lines.append("| worker RSS, host: first quarter → last quarter (max) | "
                     f"{median([r[2] for r in first]):.0f} → {median([r[2] for r in last]):.0f}"
                     f" MB ({max(r[2] for r in soak.rss):.0f}) |")
    lines += ["", END]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    text = path.read_text()
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text,
                      flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=DOC)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="soak-"))
    bed = TemporalCluster(temporal_cli(), base / "cluster")
    bed.start()
    workers: dict[str, WorkerProcess] = {}
    try:
        client = await connect_client(bed.address)
        main_queue = f"soak-{uuid.uuid4().hex[:6]}"
        sec_queue = f"{main_queue}-sec"
        main_dirs, sec_dirs = host_dirs(base, "main"), host_dirs(base, "sec")
        quiet_notifier(main_dirs["home"])
        env = worker_env(bed, main_dirs, TASK_QUEUE=main_queue, BLOCK_CHECK_INTERVAL="5s",
                         AGENT_QUEUES=f"security-agent={sec_queue}")
        workers["main"] = WorkerProcess(env, base / "main.log")
        host_env = host_worker_env(bed, sec_dirs, sec_queue, main_queue,
                                   BLOCK_CHECK_INTERVAL="5s")
        workers["host"] = WorkerProcess(host_env, base / "host.log")
        for worker in workers.values():
            worker.start()
            await worker.wait_event("worker_started", timeout=120)
        main_dirs["tasks"].mkdir(parents=True, exist_ok=True)
        soak = Soak(client, [main_dirs["tasks"], sec_dirs["tasks"]])
        until = time.monotonic() + args.minutes * 60
        helpers = [asyncio.create_task(job) for job in (
            soak.agents({sec_dirs["tasks"]: sec_dirs["audit"]}), soak.decide(),
            faults(soak, bed, workers, until), sample_rss(soak, workers))]
        await stream(soak, main_dirs["tasks"], main_queue, until)
        drain = time.monotonic() + 300
        while time.monotonic() < drain and (await outcomes(soak)).get("running", 0):
            await asyncio.sleep(5)
        counts = await outcomes(soak)
        for job in helpers:
            job.cancel()
        section = report(soak, counts, duplicates(soak.task_dirs), args.minutes)
    finally:
        for worker in workers.values():
            await worker.stop()
        bed.stop()
    print(section)
    write_section(args.output, section)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
