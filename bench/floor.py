"""The floor: a minimal async-completion workflow in its own worker process.

`python -m bench.floor ADDRESS QUEUE DIR` runs a worker whose workflow has one activity
that saves its token and completes async, then one activity that writes one file.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


class FloorActivities:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @activity.defn(name="floor_wait")
    async def wait(self, name: str) -> str:
        (self.directory / f"{name}.token").write_bytes(activity.info().task_token)
        activity.raise_complete_async()

    @activity.defn(name="floor_write")
    async def write(self, name: str) -> None:
        (self.directory / f"{name}.next").write_text("x")


@workflow.defn(name="FloorWorkflow")
class FloorWorkflow:
    @workflow.run
    async def run(self, name: str) -> None:
        await workflow.execute_activity("floor_wait", name,
                                        start_to_close_timeout=timedelta(hours=1))
        await workflow.execute_activity("floor_write", name,
                                        start_to_close_timeout=timedelta(minutes=1))


async def main(address: str, queue: str, directory: str) -> None:
    client = await Client.connect(address)
    acts = FloorActivities(Path(directory))
    worker = Worker(client, task_queue=queue, workflows=[FloorWorkflow],
                    activities=[acts.wait, acts.write])
    print("floor_ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
