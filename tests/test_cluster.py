"""The same tests on a production-shaped Temporal: the real server v1.29.1 on PostgreSQL with
SQL visibility and two history/matching nodes (testbed/cluster.py).

The tests imported below run here a second time: this module's `server` and `client`
fixtures point every fixture built on them (env, cfg, worker) at the cluster. Then one test
only a cluster can have: a server node killed while builds are in flight."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import TimeoutType
from temporalio.client import Client

from config import load_config
from models import BlockDecision
from testbed.agents import AgentSim, triage_writer
from testbed.cluster import TemporalCluster
from testbed.helpers import (
    eventually,
    files_of_type,
    host_dirs,
    host_worker_env,
    quiet_notifier,
    reaches_stage,
    running_worker,
    start_pipeline,
    task_files,
    worker_env,
)
from testbed.netcut import net_cut
from testbed.processes import WorkerProcess, started_worker
from tests.task_queue_tool import override
from tests.test_blocks import (  # noqa: F401 - collected again against the cluster
    test_block_wait_survives_worker_restart,
    test_file_approval_resumes_with_partial_outcome,
    test_reject_update_ends_pipeline_with_summary,
    test_signal_approval,
    test_update_refused_when_not_parked,
)
from tests.test_build_plan import test_phases_run_in_order  # noqa: F401
from tests.test_buildctl import test_plan_and_cancel, test_start_status_list_approve  # noqa: F401
from tests.test_hosts import (  # noqa: F401
    redispatches,
    stage_files,
    test_host_down_is_visible_and_costs_no_stage_time,
    test_pipeline_across_three_hosts,
    test_two_host_workers_share_a_directory_and_one_dies,
    test_two_main_workers_one_killed_while_parked,
)
from tests.test_pipeline import (  # noqa: F401
    test_clean_pipeline_writes_summary,
    test_task_file_contract,
)
from tests.test_recovery import test_orphaned_stage_is_redispatched  # noqa: F401
from tests.test_search_attributes import test_pipeline_is_findable_by_build_name  # noqa: F401
from tests.test_worker_crash import test_sigkill_during_agent_wait_and_block_wait  # noqa: F401
from workflows.build_pipeline import BuildPipelineWorkflow


@pytest.fixture
def server(cluster: TemporalCluster) -> TemporalCluster:
    return cluster


@pytest_asyncio.fixture(loop_scope="session")
async def client(cluster_client: Client) -> Client:
    return cluster_client


async def test_history_node_killed_while_builds_run(client, cluster, cfg, dirs, env):
    """SIGKILL the second history/matching node while builds wait for an agent, at least
    one of them on a shard that node owns: the shard moves to the surviving node and every
    build ends, once."""
    quiet_notifier(dirs["home"])
    hold = {"on": True}
    behaviours = {"build_plan": lambda d, p: None if hold["on"] else ("success", "built"),
                  "security_audit": triage_writer(dirs["audit"], {"flags": ["f"]})}
    try:
        async with running_worker(client, cfg), AgentSim(dirs["tasks"], env, behaviours):
            await eventually(lambda: cluster.shards_of("b"), 60)
            on_b, handles = None, []
            while on_b is None and len(handles) < 24:  # until one build lives on node b
                handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"],
                                              f"node-{len(handles)}")
                handles.append(handle)
                if cluster.shard_of(handle.id) in cluster.shards_of("b"):
                    on_b = handle
            assert on_b is not None, f"node b owns shards {cluster.shards_of('b')}, none used"
            await eventually(
                lambda: len(files_of_type(dirs["tasks"], "build_plan")) == len(handles), 90)
            cluster.kill_node("b")
            hold["on"] = False
            results = await asyncio.wait_for(
                asyncio.gather(*(handle.result() for handle in handles)), 180)
            assert cluster.shard_of(on_b.id) in cluster.shards_of("a")  # moved over
    finally:
        if cluster.nodes["b"].process is None:
            cluster.start_node("b")  # the next tests get both nodes back
    documents = stage_files(dirs["tasks"])
    assert Counter(d["task_type"] for d in documents) == {
        kind: len(handles) for kind in ("build_prefab", "build_plan", "security_audit",
                                        "security_fix", "build_closeout")}
    assert redispatches(documents) == []
    assert all(Path(result.summary_path).exists() for result in results)


# -- faults beyond one node: each with builds parked and builds mid-hand-off ------------------

def audit_by_name(audit_dir: Path) -> Callable[[dict[str, Any], Path], tuple[str, str]]:
    """The security agent: builds named parked-* get a block, the others a clean audit."""
    blocked = triage_writer(audit_dir, {"blocks": ["needs an operator"]})
    clean = triage_writer(audit_dir, {"info": ["clean"]})
    return lambda d, p: (blocked if d["payload"]["build_name"].startswith("parked")
                         else clean)(d, p)


def one_line_per_fault(worker: WorkerProcess) -> None:
    """The worker said the outage once and its end once, and was never restarted."""
    events = [e.get("event") for e in worker.events()]
    assert events.count("temporal_unreachable") == 1, events
    assert events.count("temporal_reachable") == 1, events
    assert events.count("worker_started") == 1 and worker.process.poll() is None


def ended_once(task_dir: Path, kinds: dict[str, int]) -> None:
    """One file per stage and build, never given a second token; each originating task
    completed exactly once."""
    documents = stage_files(task_dir)
    assert Counter(d["task_type"] for d in documents) == kinds
    assert redispatches(documents) == []
    origins = [d for d in task_files(task_dir) if d.get("source_agent") != "temporal-worker"]
    for origin in origins:
        assert [e["status"] for e in origin["history"]].count("completed") == 1, origin


async def builds_across(client: Client, env: dict[str, str], dirs: dict[str, Path],
                        log: Path, fault: Callable[[WorkerProcess], Awaitable[None]]
                        ) -> WorkerProcess:
    """Two builds parked (one approved by signal before FAULT, one through its task file
    during it) and two whose implement stage finishes as FAULT begins (their hand-off
    crosses it); all four end, in a worker process that lives through FAULT."""
    quiet_notifier(dirs["home"])
    hold = {"moving": True}
    behaviours = {"build_plan": lambda d, p: (None if hold["moving"] and d["payload"][
        "build_name"].startswith("moving") else ("success", "built")),
                  "security_audit": audit_by_name(dirs["audit"])}
    queue = env["TASK_QUEUE"]
    async with started_worker(env, log) as worker, AgentSim(dirs["tasks"], env, behaviours):
        moving = [await start_pipeline(client, queue, dirs["tasks"], f"moving-{n}")
                  for n in range(2)]
        await eventually(lambda: len(files_of_type(dirs["tasks"], "build_plan")) == 2, 90)
        parked = [await start_pipeline(client, queue, dirs["tasks"], f"parked-{n}")
                  for n in range(2)]
        for handle in parked:
            await reaches_stage(handle, "wait", 120)
        origin = (await (await parked[1].describe()).memo())["awaiting_task_id"]
        # Approved before the fault (the server accepted it), and one through its file during it.
        await parked[0].signal(BuildPipelineWorkflow.approve, BlockDecision(by="alice"))
        hand_offs = asyncio.create_task(fault(worker))
        hold["moving"] = False  # their agents finish now: the hand-off meets the fault
        override(dirs["tasks"], origin, "approved", "operator", "during the fault")
        await hand_offs
        results = await asyncio.wait_for(
            asyncio.gather(*(handle.result() for handle in [*moving, *parked])), 240)
        await worker.wait_event("temporal_reachable", timeout=120)
        one_line_per_fault(worker)
    assert len({result.summary_path for result in results}) == 4
    ended_once(dirs["tasks"], {"build_prefab": 4, "build_plan": 4, "security_audit": 4,
                               "build_closeout": 4})
    return worker


async def test_postgres_restarted_while_builds_park_and_hand_off(client, cluster, dirs,
                                                                 tmp_path):
    """PostgreSQL stops, stays down 10 s and starts again."""
    async def restart_postgres(worker: WorkerProcess) -> None:
        await asyncio.to_thread(cluster.postgres.halt)
        await asyncio.sleep(10)  # the fault's least length, not a wait for a condition
        await worker.wait_event("temporal_unreachable", timeout=90)  # down until it is seen
        await asyncio.to_thread(cluster.postgres.run)

    env = worker_env(cluster, dirs, BLOCK_CHECK_INTERVAL="1s")
    await builds_across(client, env, dirs, tmp_path / "worker.log", restart_postgres)


async def test_frontend_killed_and_restarted_while_builds_park_and_hand_off(client, cluster,
                                                                            dirs, tmp_path):
    """The frontend node (frontend, history, matching, worker services) is SIGKILLed and
    started again 5 s later (or once the worker has seen it gone: a sweep pass busy in retried
    calls may span 5 s); node b holds the shards meanwhile."""
    async def restart_frontend(worker: WorkerProcess) -> None:
        cluster.kill_node("a")
        await asyncio.sleep(5)  # the fault's least length
        await worker.wait_event("temporal_unreachable", timeout=90)  # down until it is seen
        await asyncio.to_thread(cluster.start_node, "a")

    env = worker_env(cluster, dirs, BLOCK_CHECK_INTERVAL="1s")
    try:
        await builds_across(client, env, dirs, tmp_path / "worker.log", restart_frontend)
    finally:
        if cluster.nodes["a"].process is None:
            cluster.start_node("a")


async def test_host_worker_cut_off_longer_than_its_heartbeat_timeout(client, cluster, dirs,
                                                                     tmp_path):
    """The security host's worker reaches the server through a link the test cuts just as
    audits finish, until a triage attempt handed to it misses its 30 s heartbeat timeout:
    that attempt is given again when the host is back; every build ends once."""
    quiet_notifier(dirs["home"])
    main_queue = f"main-{uuid.uuid4().hex[:8]}"
    sec_queue = f"{main_queue}-sec"
    env = worker_env(cluster, dirs, TASK_QUEUE=main_queue, BLOCK_CHECK_INTERVAL="1s",
                     AGENT_QUEUES=f"security-agent={sec_queue}")
    place = host_dirs(tmp_path, "sec")
    agent_env = host_worker_env(cluster, place, sec_queue, main_queue, BLOCK_CHECK_INTERVAL="1s")
    hold = {"on": True}
    audit = audit_by_name(place["audit"])
    held = {"security_audit": lambda d, p: None if hold["on"] else audit(d, p)}
    async with net_cut(cluster.address) as link, \
            running_worker(client, load_config(env)), AgentSim(dirs["tasks"], env), \
            AgentSim(place["tasks"], agent_env, held), \
            started_worker({**agent_env, "TEMPORAL_ADDRESS": link.address},
                           tmp_path / "sec.log") as host:
        handles = [await start_pipeline(client, main_queue, dirs["tasks"], name)
                   for name in ("parked-0", "moving-0", "moving-1")]
        await eventually(lambda: len(files_of_type(place["tasks"], "security_audit")) == 3, 120)
        link.cut()
        hold["on"] = False  # audits finish while their host's worker is cut off
        await host.wait_event("temporal_unreachable", timeout=60)

        async def triage_timed_out() -> bool:
            """A triage attempt handed to the cut-off host missed its 30 s heartbeat."""
            for handle in handles:
                for pending in (await handle.describe()).raw_description.pending_activities:
                    failure = pending.last_failure.timeout_failure_info
                    if (pending.activity_type.name == "process_triage_output"
                            and pending.attempt >= 2
                            and failure.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT):
                        return True
            return False

        await eventually(triage_timed_out, 120)
        link.restore()
        await reaches_stage(handles[0], "wait", 180)
        await handles[0].signal(BuildPipelineWorkflow.approve, BlockDecision(by="alice"))
        results = await asyncio.wait_for(
            asyncio.gather(*(handle.result() for handle in handles)), 240)
        await host.wait_event("temporal_reachable", timeout=120)
        await eventually(lambda: {d["status"] for d in stage_files(place["tasks"])}
                         == {"completed"}, 120)  # settled by the host's own sweep
        one_line_per_fault(host)
    assert len({result.summary_path for result in results}) == 3
    assert Counter(d["task_type"] for d in stage_files(place["tasks"])) == {"security_audit": 3}
    assert redispatches(stage_files(place["tasks"])) == []
    ended_once(dirs["tasks"], {"build_prefab": 3, "build_plan": 3, "build_closeout": 3})
