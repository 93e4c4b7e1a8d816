"""The cluster phase: hand-off, parked capacity and throughput again on the production-shaped
server (testbed/cluster.py), each beside the dev server's figure."""

from __future__ import annotations

from temporalio.client import Client

from bench.capacity import parked_capacity
from bench.context import Bench
from bench.floor_client import MEMO_FLOOR, Floor
from bench.measure import median, ms
from bench.pipelines import our_sample
from bench.report import verdict
from bench.throughput import burst_rates
from testbed.cluster import TemporalCluster
from testbed.helpers import connect_client


async def cluster(bench: Bench, cli: str) -> None:
    """Hand-off, parked capacity and throughput on the production-shaped server, vs the
    dev server."""
    bed = TemporalCluster(cli, bench.base / "cluster")
    bed.start()
    try:
        client = await connect_client(bed.address)
        paired = await cluster_handoffs(bench, bed, client)
        count = bench.parked_count()
        got = await parked_capacity(bench, bed, client, "on-cluster", count)
        bursts = [10, 30] if bench.quick else [50, 200]
        rates, _, _ = await burst_rates(bench, bed, client, "throughput-on-cluster", bursts,
                                        rss_after=False)
    finally:
        bed.stop()
    dev = bench.on_dev
    rss, before, during = got["rss"], median(got["before"]), median(got["during"])
    bench.row("Cluster: hand-off, in-process completion → next task file (median)",
              ms(before), f"report; dev server {ms(dev['idle'])} "
              f"({before / dev['idle']:.2f}×)", "-")
    ours, floor, memo = (median(paired[key]) for key in ("inproc", "floor", "memo"))
    bench.row("Cluster: hand-off, in-process ÷ floor, samples interleaved (median)",
              f"{ours / floor:.2f}× ({ms(ours)} vs {ms(floor)})",
              "report; the target is on the dev server", "-")
    bench.row("Cluster: the memo floor's hand-off ÷ the floor's (median)",
              f"{memo / floor:.2f}× ({ms(memo)} vs {ms(floor)})",
              "reference: one visibility write per hand-off, on PostgreSQL", "-")
    bench.row(f"Cluster: fresh hand-off while {count} parked ÷ idle (median)",
              f"{during / before:.2f}× ({ms(during)} vs {ms(before)})",
              f"≤ 1.5×; dev server {ms(dev['during'])}",
              verdict(during <= 1.5 * before))
    bench.row(f"Cluster: worker RSS with {count} pipelines parked", f"{rss:.0f} MB",
              f"report; dev server {dev['rss']:.0f} MB", "-")
    for burst, rate, on_dev in zip(bursts, rates, bench.dev_rates, strict=False):
        bench.row(f"Cluster: throughput, {burst} concurrent pipelines, instant agents",
                  f"{rate:.0f} pipelines/min",
                  f"≥ 76/min; dev server {on_dev:.0f}/min at {burst}",
                  verdict(rate >= 76))


async def cluster_handoffs(bench: Bench, bed: TemporalCluster,
                           client: Client) -> dict[str, list[float]]:
    """In-process hand-offs on the cluster, interleaved with the floor's and the memo
    floor's (as on the dev server, quiet only)."""
    dirs = bench.dirs("handoff-on-cluster")
    worker, env = await bench.start_worker(bed, dirs, BLOCK_CHECK_INTERVAL="30s")
    figures: dict[str, list[float]] = {key: [] for key in ("inproc", "floor", "memo")}
    floor = Floor(bed.address, bench.base / "floor-on-cluster")
    await floor.start()
    try:
        for index in range(3 if bench.quick else 15):
            await our_sample(client, env, dirs, figures, "inproc")
            figures["floor"].append((await floor.sample("FloorWorkflow", f"f{index}"))[1])
            figures["memo"].append((await floor.sample(MEMO_FLOOR, f"m{index}"))[1])
    finally:
        floor.stop()
        await worker.stop()
    return figures
