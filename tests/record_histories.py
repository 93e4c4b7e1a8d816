"""Record workflow histories for the replay test:
`python -m tests.record_histories [routed|refused|liveness]`.

The files of a release whose runs must keep replaying are moved to `histories/<release>/` first.

Re-record only on purpose (a deliberate, versioned workflow change); CI replays these files
so that a change which would break running workflows fails. `routed` records only the
pipeline whose stages go to host queues (one host down for a while), `refused` only the one
whose triage file is refused (parked, rejected), leaving the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError

from config import load_config
from models import BlockDecision, BuildPlanInput, PhaseSpec
from testbed.agents import AgentSim, triage_writer
from testbed.devserver import DevServer, free_port, temporal_cli
from testbed.helpers import (
    connect_client,
    eventually,
    host_dirs,
    host_worker_env,
    quiet_notifier,
    running_worker,
    start_pipeline,
    worker_env,
)

OUT = Path(os.environ.get("HISTORIES_OUT") or Path(__file__).parent / "histories")


@contextlib.asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[Path, DevServer, Client]]:
    """A fresh dev server in a temporary directory, and a client."""
    base = Path(tempfile.mkdtemp())
    server = DevServer(temporal_cli(), base / "db", free_port(), free_port(), base / "log")
    server.start()
    try:
        yield base, server, await connect_client(server.address)
    finally:
        server.stop()


async def record() -> None:
    async with recording_server() as (base, server, client):
        dirs = host_dirs(base, "main")
        quiet_notifier(dirs["home"])
        env = worker_env(server, dirs)
        config = load_config(env)
        cases = {
            "clean": {"info": ["fine"]},
            "flags": {"flags": ["world-readable key"]},
            "blocks-approved": {"blocks": ["docker socket"], "flags": ["f"]},
            "blocks-rejected": {"blocks": ["root"]},
        }
        async with running_worker(client, config):
            for name, triage in cases.items():
                behaviours = {"security_audit": triage_writer(dirs["audit"], triage)}
                async with AgentSim(dirs["tasks"], env, behaviours, client=client):
                    handle = await start_pipeline(client, config.task_queue, dirs["tasks"],
                                                  f"replay-{name}")
                    if "blocks" in triage:
                        await eventually(lambda h=handle: _parked(h))
                        verdict = "approve" if name.endswith("approved") else "reject"
                        await handle.signal(verdict, BlockDecision(by="recorder"))
                    with contextlib.suppress(WorkflowFailureError):
                        await handle.result()
                history = await handle.fetch_history()
                (OUT / f"pipeline-{name}.json").write_text(history.to_json())
            async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None},
                                client=client):
                handle = await start_pipeline(client, config.task_queue, dirs["tasks"],
                                              "replay-cancelled")
                await eventually(lambda h=handle: _stage_is(h, "implement"))
                await handle.cancel()
                with contextlib.suppress(WorkflowFailureError):
                    await handle.result()
            (OUT / "pipeline-cancelled.json").write_text(
                (await handle.fetch_history()).to_json())
            failing = {"build_plan": lambda d, p: ("failed", "compiler exploded")}
            async with AgentSim(dirs["tasks"], env, failing, client=client):
                handle = await start_pipeline(client, config.task_queue, dirs["tasks"],
                                              "replay-failed")
                with contextlib.suppress(WorkflowFailureError):
                    await handle.result()
            (OUT / "pipeline-failed.json").write_text((await handle.fetch_history()).to_json())
            plan = BuildPlanInput(plan_name="replay-plan", phases=[
                PhaseSpec(number=1, agent_type="dev", description="one"),
                PhaseSpec(number=2, agent_type="ops", description="two")])
            async with AgentSim(dirs["tasks"], env, client=client):
                handle = await client.start_workflow("BuildPlanWorkflow", plan, id="replay-plan",
                                                     task_queue=config.task_queue)
                await handle.result()
            (OUT / "plan.json").write_text((await handle.fetch_history()).to_json())


async def record_routed() -> None:
    """A pipeline with the security agent and dev on host queues; dev's host starts late."""
    async with recording_server() as (base, server, client):
        dirs = host_dirs(base, "main")
        quiet_notifier(dirs["home"])
        queues = {"sec": "replay-sec", "dev": "replay-dev"}
        env = worker_env(server, dirs, TASK_QUEUE="replay-main",
                         AGENT_QUEUES=f"security-agent={queues['sec']},dev={queues['dev']}")
        places = {host: host_dirs(base, host) for host in queues}
        hosts = {host: load_config(host_worker_env(server, places[host], queue, "replay-main"))
                 for host, queue in queues.items()}
        triage = {"security_audit": triage_writer(places["sec"]["audit"], {"flags": ["f"]})}
        async with running_worker(client, load_config(env)), \
                running_worker(client, hosts["sec"]), \
                AgentSim(dirs["tasks"], env, client=client), \
                AgentSim(places["sec"]["tasks"], env, triage, client=client), \
                AgentSim(places["dev"]["tasks"], env, client=client):
            handle = await start_pipeline(client, "replay-main", dirs["tasks"], "replay-routed")
            await eventually(lambda: _unpolled(handle), 60)
            async with running_worker(client, hosts["dev"]):
                await handle.result()
        (OUT / "pipeline-routed.json").write_text((await handle.fetch_history()).to_json())


async def record_refused() -> None:
    """A pipeline whose triage file cannot prove a clean audit: parked, then rejected."""
    async with recording_server() as (base, server, client):
        dirs = host_dirs(base, "main")
        quiet_notifier(dirs["home"])
        env = worker_env(server, dirs)
        config = load_config(env)
        unproven = "findings:\n  - severity: block\n    description: root password\n"
        behaviours = {"security_audit": triage_writer(dirs["audit"], unproven)}
        async with running_worker(client, config), \
                AgentSim(dirs["tasks"], env, behaviours, client=client):
            handle = await start_pipeline(client, config.task_queue, dirs["tasks"],
                                          "replay-refused")
            await eventually(lambda: _parked(handle))
            await handle.signal("reject", BlockDecision(by="recorder", reason="unreadable"))
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
            (OUT / "pipeline-triage-refused.json").write_text(
                (await handle.fetch_history()).to_json())
            # Approved as unreadable, then corrected to hold a block: decided again.
            handle = await start_pipeline(client, config.task_queue, dirs["tasks"],
                                          "replay-corrected")
            await eventually(lambda: _parked(handle))
            (dirs["audit"] / "replay-corrected" / "triage-output.yml").write_text(
                "blocks: [root password]\nflags: [rotate key]\ninfo: []\n")
            await handle.signal("approve", BlockDecision(by="recorder", reason="corrected"))
            await eventually(lambda: _decided_again(handle))
            await handle.signal("approve", BlockDecision(by="recorder", reason="seen"))
            await handle.result()
        (OUT / "pipeline-refused-corrected.json").write_text(
            (await handle.fetch_history()).to_json())


async def record_liveness() -> None:
    """A pipeline with AGENT_HEARTBEAT_TIMEOUT: the prefab agent is silent once (re-offered),
    then finishes on the fresh token; the rest runs clean."""
    async with recording_server() as (base, server, client):
        dirs = host_dirs(base, "main")
        quiet_notifier(dirs["home"])
        env = worker_env(server, dirs, AGENT_HEARTBEAT_TIMEOUT="1s", AGENT_REOFFERS="1")
        config = load_config(env)
        first: list[str] = []

        def silent_once(document, _path):
            token = document["payload"]["task_token"]
            first[:] = first or [token]
            return None if token == first[0] else ("success", "scaffolded")

        behaviours = {"build_prefab": silent_once,
                      "security_audit": triage_writer(dirs["audit"], {"info": ["fine"]})}
        async with running_worker(client, config), \
                AgentSim(dirs["tasks"], env, behaviours, client=client):
            handle = await start_pipeline(client, config.task_queue, dirs["tasks"],
                                          "replay-liveness")
            await handle.result()
        (OUT / "pipeline-liveness.json").write_text((await handle.fetch_history()).to_json())


async def _unpolled(handle) -> bool:
    return bool((await handle.query("progress")).get("queue_unpolled"))


async def _parked(handle) -> bool:
    return await _stage_is(handle, "wait")


async def _decided_again(handle) -> bool:
    progress = await handle.query("progress")
    return progress.get("stage") == "wait" and progress.get("findings") == ["root password"]


async def _stage_is(handle, stage: str) -> bool:
    return (await handle.query("progress")).get("stage") == stage


if __name__ == "__main__":
    import sys

    modes = {"routed": record_routed, "refused": record_refused, "liveness": record_liveness}
    asyncio.run(modes.get(sys.argv[1] if sys.argv[1:] else "", record)())
