"""The floor: a minimal async-completion workflow in its own worker process.

`python -m bench.floor ADDRESS QUEUE DIR` runs a worker whose workflow has one activity
that saves its token and completes async, then one activity that writes one file; its
`FloorLocalWorkflow` runs one no-op local activity first (the price of one local activity);
`FloorContractWorkflow` does that and writes its two files as the task directory's contract
asks of any writer (the price of the files every implementation must write);
`FloorMemoWorkflow` names in its memo the activity it waits on before each, as our runs tell
the sweeper (the price of one visibility write per hand-off);
`FloorStagesWorkflow` has a parked pipeline's shape (the memory a cached run of that history
costs the SDK itself). With `--libraries` it also loads what the mission requires of any
implementation (pydantic, with one model built, and PyYAML): the memory no rewrite can shed.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

# As in our worker (bootstrap.lighten_sdk_import): the SDK needs no Python gRPC stubs, and
# grpcio (here for the OTLP exporter) would add ~8 MB that is no part of the SDK's cost. The
# floor still imports every service's messages, as the SDK does: deferring them is ours.
sys.modules.setdefault("grpc", None)  # type: ignore[arg-type]

from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402


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

    @activity.defn(name="floor_noop")
    async def noop(self) -> None:
        return None

    @activity.defn(name="floor_wait_contract")
    async def wait_contract(self, name: str) -> str:
        token = base64.b64encode(activity.info().task_token).decode()
        contract_write(self.directory / f"{name}.token", {"task_token": token})
        activity.raise_complete_async()

    @activity.defn(name="floor_write_contract")
    async def write_contract(self, name: str) -> None:
        contract_write(self.directory / f"{name}.next", {"status": "pending"})


def contract_write(path: Path, document: dict[str, str]) -> None:
    """A file written as the task directory's contract asks of every writer (TASK-QUEUE.md,
    SPEC B7): under the tooling's flock on `.locks/<name>.lock`, YAML, 0600, tmp + fsync +
    rename, the directory synced. Only what the contract requires: no symlink checks, no index."""
    import yaml  # here, so the plain floor's memory rows never load it

    locks = path.parent / ".locks"
    locks.mkdir(mode=0o700, exist_ok=True)
    lock = os.open(locks / f"{path.stem}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)).encode()
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    finally:
        os.close(lock)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@workflow.defn(name="FloorWorkflow")
class FloorWorkflow:
    @workflow.run
    async def run(self, name: str) -> None:
        await workflow.execute_activity("floor_wait", name,
                                        start_to_close_timeout=timedelta(hours=1))
        await workflow.execute_activity("floor_write", name,
                                        start_to_close_timeout=timedelta(minutes=1))


@workflow.defn(name="FloorLocalWorkflow")
class FloorLocalWorkflow(FloorWorkflow):
    @workflow.run
    async def run(self, name: str) -> None:
        await workflow.execute_local_activity("floor_noop",
                                              start_to_close_timeout=timedelta(seconds=30))
        await super().run(name)


@workflow.defn(name="FloorContractWorkflow")
class FloorContractWorkflow:
    """FloorLocalWorkflow with its files written as the contract asks (`contract_write`)."""

    @workflow.run
    async def run(self, name: str) -> None:
        await workflow.execute_local_activity("floor_noop",
                                              start_to_close_timeout=timedelta(seconds=30))
        await workflow.execute_activity("floor_wait_contract", name,
                                        start_to_close_timeout=timedelta(hours=1))
        await workflow.execute_activity("floor_write_contract", name,
                                        start_to_close_timeout=timedelta(minutes=1))


@workflow.defn(name="FloorMemoWorkflow")
class FloorMemoWorkflow:
    """FloorWorkflow that upserts its memo with each activity, as our hand-offs do."""

    @workflow.run
    async def run(self, name: str) -> None:
        workflow.upsert_memo({"dispatch_task_id": f"{name}-wait"})
        await workflow.execute_activity("floor_wait", name,
                                        start_to_close_timeout=timedelta(hours=1))
        workflow.upsert_memo({"dispatch_task_id": f"{name}-write"})
        await workflow.execute_activity("floor_write", name,
                                        start_to_close_timeout=timedelta(minutes=1))


@workflow.defn(name="FloorStagesWorkflow")
class FloorStagesWorkflow:
    """A blocked pipeline's commands up to its wait for an operator, with no code of ours:
    one local activity; three waits; two plain activities at once; a wait; two plain at once;
    then the last wait (`NAME-4`), where it parks."""

    @workflow.run
    async def run(self, name: str) -> None:
        def wait(step: int) -> Any:
            return workflow.execute_activity("floor_wait", f"{name}-{step}",
                                             start_to_close_timeout=timedelta(hours=1))

        def write(what: str) -> Any:
            return workflow.execute_activity("floor_write", f"{name}-{what}",
                                             start_to_close_timeout=timedelta(minutes=1))

        await workflow.execute_local_activity("floor_noop",
                                              start_to_close_timeout=timedelta(seconds=30))
        for step in range(3):
            await wait(step)
        await asyncio.gather(write("triage"), write("settle-2"))
        await wait(3)
        await asyncio.gather(write("notify"), write("settle-3"))
        await wait(4)


def load_required_libraries() -> None:
    """Use pydantic and PyYAML once, as any worker of this mission must (one model, one dump)."""
    import yaml
    from pydantic import BaseModel

    class Probe(BaseModel):
        name: str = "floor"

    yaml.safe_dump(Probe().model_dump())


async def main(address: str, queue: str, directory: str, libraries: bool) -> None:
    if libraries:
        load_required_libraries()
    client = await Client.connect(address)
    acts = FloorActivities(Path(directory))
    worker = Worker(client, task_queue=queue,
                    workflows=[FloorWorkflow, FloorLocalWorkflow, FloorContractWorkflow,
                               FloorMemoWorkflow, FloorStagesWorkflow],
                    activities=[acts.wait, acts.write, acts.noop, acts.wait_contract,
                                acts.write_contract])
    print("floor_ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4], libraries="--libraries" in sys.argv[4:]))
