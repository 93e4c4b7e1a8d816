"""A worker process (umask 000) SIGKILLed while a stage waits for its agent and again while
blocks wait: a new worker finishes the pipeline; one task file per stage; every file 0600."""

from __future__ import annotations

import stat
from collections import Counter
from pathlib import Path

import yaml

from testbed.agents import AgentSim, triage_writer
from testbed.helpers import (
    eventually,
    files_of_type,
    reaches_stage,
    start_pipeline,
    task_files,
    worker_env,
)
from testbed.processes import WorkerProcess
from tests.task_queue_tool import override


async def test_sigkill_during_agent_wait_and_block_wait(client, server, dirs, tmp_path):
    script = dirs["home"] / "send-matrix.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    env = worker_env(server, dirs)
    worker = WorkerProcess(env, tmp_path / "worker.log", umask=0)
    worker.start()
    hold = {"build_plan": True}
    behaviours = {
        "build_plan": lambda d, p: None if hold["build_plan"] else ("success", "built"),
        "security_audit": triage_writer(dirs["audit"], {"blocks": ["b"], "flags": ["f"]}),
    }
    try:
        await worker.wait_event("worker_started")
        async with AgentSim(dirs["tasks"], env, behaviours):
            handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "killed")
            await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
            worker.kill()  # the implement stage is waiting for its agent
            worker.start()
            await worker.wait_event("worker_started", count=2)
            hold["build_plan"] = False

            await reaches_stage(handle, "wait", 60)
            worker.kill()  # blocks are waiting for an operator
            worker.start()
            await worker.wait_event("worker_started", count=3)
            origin = (await (await handle.describe()).memo())["awaiting_task_id"]
            override(dirs["tasks"], origin, "approved", "operator", "ok")
            result = await handle.result()
    finally:
        await worker.stop()
    counts = Counter(d["task_type"] for d in task_files(dirs["tasks"], strict=True)
                     if d["source_agent"] == "temporal-worker")
    assert counts == {"build_prefab": 1, "build_plan": 1, "security_audit": 1,
                      "security_fix": 1, "build_closeout": 1}
    written = [*dirs["tasks"].glob("*.yml"), *dirs["audit"].rglob("request.md"),
               Path(result.summary_path)]
    assert len(written) == 8  # five stage files, the originating task, request.md, summary
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in (dirs["tasks"], dirs["audit"], Path(result.summary_path).parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert summary["outcome"] == "partial"
