"""Benchmarks on the real dev server: `python -m bench.run [--quick] [--only P] [--output F]`.

Measures hand-off latency (CLI, in-process, floor), the agents' CLI cost, operator decision
latency, parked capacity, throughput and task lookup; then hand-off, parked capacity and
throughput again on the real server on PostgreSQL with two history/matching nodes
(testbed/cluster.py); writes a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client

from bench.capacity import capacity
from bench.cluster import cluster
from bench.context import Bench
from bench.decisions import decisions
from bench.handoff import handoffs
from bench.heartbeats import heartbeats
from bench.http_handoff import http_rows
from bench.lookup import lookup
from bench.report import DOC, render
from bench.throughput import throughput
from testbed.devserver import DevServer, free_port, temporal_cli
from testbed.helpers import connect_client
from testbed.processes import ROOT


def arguments() -> argparse.Namespace:
    """The runner's options (the README and docs name them)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke run)")
    parser.add_argument("--output", type=Path, help=f"the page (default {DOC.relative_to(ROOT)}, "
                        "the committed one; with "
                        "--only: none, the rows are printed)")
    parser.add_argument("--only", choices=sorted(PHASES), action="append",
                        help="run only this dev-server phase (repeatable; no cluster rows)")
    return parser.parse_args()


async def _lookup(bench: Bench, server: DevServer, client: Client) -> None:
    lookup(bench)


Phase = Callable[[Bench, DevServer, Client], Awaitable[None]]
# The phases on one dev server, in this order: the cluster's rows compare with theirs.
PHASES: dict[str, Phase] = {"handoff": handoffs, "heartbeats": heartbeats, "http": http_rows,
                            "decisions": decisions, "capacity": capacity,
                            "throughput": throughput, "lookup": _lookup}


async def on_dev_server(bench: Bench, cli: str, only: list[str] | None = None) -> None:
    """The phases on one dev server (ONLY those named, when given), in PHASES' order."""
    server = DevServer(cli, bench.base / "db", free_port(), free_port(), bench.base / "log")
    server.start()
    try:
        client = await connect_client(server.address)
        for name, phase in PHASES.items():
            if not only or name in only:
                await phase(bench, server, client)
    finally:
        server.stop()


async def main() -> None:
    """Every phase, then the page."""
    args = arguments()
    bench = Bench(args.quick, Path(tempfile.mkdtemp(prefix="bench-")))
    cli = temporal_cli()
    await on_dev_server(bench, cli, args.only)
    if not args.only:  # the cluster's rows compare with the dev server's full set
        await cluster(bench, cli)
    output = args.output or (None if args.only else DOC)
    if output is not None:
        output.write_text(render(bench.report.rows, args.quick))
        print(f"wrote {output}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
