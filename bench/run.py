"""Benchmarks on the real dev server: `python -m bench.run [--quick] [--output FILE]`.

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
from pathlib import Path

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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke run)")
    parser.add_argument("--output", type=Path, default=DOC)
    return parser.parse_args()


async def on_dev_server(bench: Bench, cli: str) -> None:
    """The phases on one dev server, in this order: the cluster's rows compare with theirs."""
    server = DevServer(cli, bench.base / "db", free_port(), free_port(), bench.base / "log")
    server.start()
    try:
        client = await connect_client(server.address)
        await handoffs(bench, server, client)
        await heartbeats(bench, server, client)
        await http_rows(bench, server, client)
        await decisions(bench, server, client)
        await capacity(bench, server, client)
        await throughput(bench, server, client)
        lookup(bench)
    finally:
        server.stop()


async def main() -> None:
    """Every phase, then the page."""
    args = arguments()
    bench = Bench(args.quick, Path(tempfile.mkdtemp(prefix="bench-")))
    cli = temporal_cli()
    await on_dev_server(bench, cli)
    await cluster(bench, cli)
    args.output.write_text(render(bench.report.rows, args.quick))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    asyncio.run(main())
