"""The hand-off phase: ours against the floor, quiet and with one core busy (the targets,
the references beside them, the agents' CLI and its import floor, idle memory)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from temporalio.client import Client

from bench.context import Bench
from bench.floor_client import CONTRACT_FLOOR, MEMO_FLOOR, Floor
from bench.measure import busy_core, cpu_seconds, median, ms, rss_mb
from bench.pipelines import our_sample
from bench.report import verdict
from testbed.devserver import DevServer

# The reference rows (ours or a floor variant, against what), each pair sampled in the same
# (second) phase of a round: (figure, divided by, what it measures, what it shows).
REFERENCES = (
    ("ref_inproc", "ref_floor", "Hand-off, in-process ÷ floor, read again in the references' "
     "phase", "how far the ratio moves"),
    ("ref_start", "local_start", "Start → first task file ÷ floor start → first activity after "
     "one local activity", "a run's settings are one recorded local activity"),
    ("ref_inproc", "contract", "Hand-off, in-process ÷ the floor writing its files as the "
     "contract asks (YAML under the tooling's flock, 0600, tmp + fsync + rename)",
     "what every implementation writes"),
    ("ref_start", "contract_start", "Start → first task file ÷ that floor's start (one local "
     "activity, the file written as the contract asks)",
     "what every implementation records and writes"),
    ("contract", "ref_floor", "The contract floor's hand-off ÷ the floor's",
     "the contract's writes alone"),
    ("ref_inproc", "memo", "Hand-off, in-process ÷ the floor naming in its memo what it waits "
     "on, as our runs tell the sweeper", "one visibility write per hand-off"),
    ("memo", "ref_floor", "The memo floor's hand-off ÷ the floor's",
     "that visibility write alone"),
)


async def handoffs(bench: Bench, server: DevServer, client: Client) -> None:
    """The hand-off rows: every ratio to the floor, quiet and loaded, then the medians."""
    samples = 3 if bench.quick else 25
    quiet = await handoff_round(bench, server, client, samples, "quiet")
    with busy_core():
        loaded = await handoff_round(bench, server, client, samples, "loaded")
    rounds = {"quiet": quiet, "loaded": loaded}

    def ratios(mine: str, floor: str, limit: float | None, what: str, target: str) -> None:
        figures = {name: median(r[mine]) / median(r[floor]) for name, r in rounds.items()}
        detail = "; ".join(f"{name} {ms(median(r[mine]))} vs {ms(median(r[floor]))}"
                           for name, r in rounds.items())
        result = "-" if limit is None else verdict(max(figures.values()) <= limit)
        bench.row(what, " / ".join(f"{figures[n]:.2f}×" for n in rounds) + f" ({detail})",
                  target, result)

    ratios("cli_wall", "imports", 1.15,
           "Agents' CLI wall ÷ `python -c 'import temporalio.service'` (quiet / loaded)",
           "≤ 1.15×")
    ratios("inproc", "floor", 1.3,
           "Hand-off, in-process completion → next task file ÷ floor (quiet / loaded)",
           "≤ 1.3×")
    ratios("start", "floor_start", 1.0, "Start → first task file ÷ floor start → first "
           "activity, no local activity (quiet / loaded)", "≤ 1.0×")
    for mine, floor, what, why in REFERENCES:
        ratios(mine, floor, None, f"{what} (quiet / loaded)", f"reference: {why}")
    ratios("cpu", "floor_cpu", 1.3,
           "Worker CPU per sample (start, hand-off, next file) ÷ floor's (quiet / loaded)",
           "≤ 1.3×")
    for name, r in rounds.items():
        bench.row(f"Hand-off, agent CLI → next task file ({name}, median)",
                  ms(median(r["cli"])), "report", "-")
        bench.row(f"Floor: start → first activity, without / with one local activity "
                  f"({name}, median)", f"{ms(median(r['floor_start']))} / "
                  f"{ms(median(r['local_start']))}", "reference",
                  f"hand-off samples {', '.join(ms(x) for x in r['floor'])}")
    bench.row("complete_activity.py peak RSS (max)", f"{max(quiet['cli_rss']) / 1024:.0f} MB",
              "-", "-")
    bench.row("Worker RSS idle (after start)", f"{bench.idle_rss:.1f} MB", "≤ 70 MB",
              verdict(bench.idle_rss <= 70))


async def handoff_round(bench: Bench, server: DevServer, client: Client, samples: int,
                        name: str) -> dict[str, list[float]]:
    """Every hand-off figure, ours and the floor's, with their samples interleaved (one
    of ours, one of the floor's) so both see the same machine."""
    dirs = bench.dirs(f"handoff-{name}")
    # The production sweep interval: the tests' 0.5 s sweep would be most of the CPU.
    worker, env = await bench.start_worker(server, dirs, BLOCK_CHECK_INTERVAL="30s")
    if name == "quiet":
        await asyncio.sleep(2.0)  # the start's tail (first polls, GC) settles
        bench.idle_rss = rss_mb(worker)
    assert worker.process is not None
    figures: dict[str, list[float]] = {key: [] for key in (
        "inproc", "cli", "cli_wall", "cli_rss", "start", "cpu", "floor", "floor_start",
        "floor_cpu", "imports", "ref_inproc", "ref_start", "ref_floor", "local_start",
        "contract_start", "contract", "memo")}
    floor = Floor(server.address, bench.base / f"floor-{name}")
    await floor.start()
    try:
        # Phase 1 (the targets): in-process hand-offs and the floor's, CPU counted for both.
        ours_cpu, floor_cpu = cpu_seconds(worker.process.pid), floor.cpu()
        for index in range(samples):
            await our_sample(client, env, dirs, figures, "inproc", "start")
            start, handoff = await floor.sample("FloorWorkflow", f"f{index}")
            figures["floor_start"].append(start)
            figures["floor"].append(handoff)
        figures["cpu"].append((cpu_seconds(worker.process.pid) - ours_cpu) / samples)
        figures["floor_cpu"].append((floor.cpu() - floor_cpu) / samples)
        # Phase 2 (the references): ours again, interleaved with the floor and each of
        # its variants, so every reference ratio compares samples of the same minutes.
        for index in range(samples):
            await our_sample(client, env, dirs, figures, "ref_inproc", "ref_start")
            figures["ref_floor"].append((await floor.sample("FloorWorkflow",
                                                            f"r{index}"))[1])
            figures["local_start"].append((await floor.sample("FloorLocalWorkflow",
                                                              f"l{index}"))[0])
            start, handoff = await floor.sample(CONTRACT_FLOOR, f"c{index}")
            figures["contract_start"].append(start)
            figures["contract"].append(handoff)
            figures["memo"].append((await floor.sample(MEMO_FLOOR, f"m{index}"))[1])
        # Phase 3: the agents' CLI and its import floor.
        for _ in range(samples):
            await our_sample(client, env, dirs, figures, "cli")
            started = time.perf_counter()
            await asyncio.to_thread(subprocess.run, [sys.executable, "-c",
                                                     "import temporalio.service"],
                                    check=True)
            figures["imports"].append(time.perf_counter() - started)
    finally:
        floor.stop()
        await worker.stop()
    return figures
