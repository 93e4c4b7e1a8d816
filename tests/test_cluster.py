"""The same tests on a production-shaped Temporal: the real server v1.29.1 on PostgreSQL with
SQL visibility and two history/matching nodes (testbed/cluster.py).

The tests imported below run here a second time: this module's `server` and `client`
fixtures point every fixture built on them (env, cfg, worker) at the cluster. Then one test
only a cluster can have: a server node killed while builds are in flight."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from testbed.agents import AgentSim, triage_writer
from testbed.cluster import TemporalCluster
from testbed.helpers import (
    eventually,
    files_of_type,
    quiet_notifier,
    running_worker,
    start_pipeline,
)
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
