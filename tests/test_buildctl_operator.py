"""buildctl.py as the operator reads it (#35.2, 7-10, 12; #36.8): the blocks in their own
words, ended builds, no worker, list's formats, start checks, inert agent text. Subprocesses
against the real dev server, as operators run it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from config import load_config
from operations.view import SHOWN, status_lines
from taskdir import TaskDirectory
from testbed.agents import AgentSim, default_behaviour, run_cli, triage_writer
from testbed.helpers import (
    buildctl,
    eventually,
    make_origin,
    plan_file,
    quiet_notifier,
    reaches_stage,
    running_worker,
    stage_file,
    start_pipeline,
)

# A heartbeat as a hostile agent writes it: an OSC 52 clipboard write, a screen clear, a
# carriage return and a newline that would forge a decision line.
HOSTILE = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b[1;1Hall good\rdecision: approved\ndecision: approved"


def held_prefab(*builds: str) -> Any:
    """A prefab agent that holds BUILDS' stages (every other build's goes on)."""
    def behave(document: dict[str, Any], path: Path) -> tuple[str, str] | None:
        if document["payload"].get("build_name") in builds:
            return None
        return default_behaviour(document, path)

    return behave


def test_status_lines_number_each_block_and_name_a_refused_triage_file():
    """The rendering itself (the workflow fills these fields): blocks numbered and bounded,
    flags counted and listed, the refusal said as one (not as a block), the decision with who
    and why, an ended build's outcome and summary, agent text made inert."""
    blocks = [f"[high] finding {n}: db/init.sql:{n}" for n in range(1, SHOWN + 6)]
    refused = "triage file unreadable: /audit/b/triage-output.yml: unknown key 'blockz'"
    result = {"workflow_id": "b-1", "type": "BuildPipelineWorkflow", "status": "completed",
              "ui": "http://ui/b-1", "summary_path": "/summaries/b-1.yml",
              "progress": {"stage": "complete", "stages_done": ["audit", "triage"],
                           "waiting_on": None, "blocks": SHOWN + 8, "flags": 2,
                           "findings": [refused, *blocks], "triage_refused": refused,
                           "flag_findings": ["pin the base image", "\x1b[31mred\x1b[0m"],
                           "triage_path": "/audit/b/triage-output.yml", "decision": "approved",
                           "decided_by": "alice", "decision_reason": "accepted\nrisk",
                           "outcome": "partial", "summary_path": "/summaries/b-1.yml"}}
    lines = status_lines(result)
    assert "triage file: /audit/b/triage-output.yml" in lines
    assert refused in lines and f"  1. {blocks[0]}" in lines
    assert f"blocks: {SHOWN + 7}" in lines  # the refusal is no block
    assert f"  {SHOWN}. {blocks[SHOWN - 1]}" in lines and f"  {SHOWN + 1}. " not in "\n".join(
        lines)
    assert "  … and 7 more" in lines
    assert lines[lines.index("flags: 2") + 1:][:2] == ["  1. pin the base image",
                                                       "  2. \ufffd[31mred\ufffd[0m"]
    assert "decision: approved by alice: accepted risk" in lines
    assert "outcome: partial" in lines and "summary: /summaries/b-1.yml" in lines
    assert not any("\x1b" in line for line in lines)


async def test_status_shows_the_blocks_own_words_and_who_decided(client, cfg, dirs, env,
                                                                  worker):
    quiet_notifier(dirs["home"])
    words = ["Hardcoded root password in db/init.sql", "TLS verification off in client.py"]
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": words,
                                                                  "flags": ["pin the image"]})}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "words")
        await reaches_stage(handle, "wait")
        code, out, err = await buildctl(env, "status", handle.id)
        assert code == 0, err
        assert f"  1. {words[0]}" in out and f"  2. {words[1]}" in out
        assert "flags: 1\n  1. pin the image" in out
        assert f"triage file: {dirs['audit']}/words/triage-output.yml" in out
        _, out, _ = await buildctl(env, "status", handle.id, "--json")
        assert json.loads(out)["progress"]["findings"] == words
        code, _, err = await buildctl(env, "approve", handle.id, "--by", "alice", "--reason",
                                      "accepted")
        assert code == 0, err
        _, out, _ = await buildctl(env, "status", handle.id)
        assert "decision: approved by alice: accepted" in out
        await handle.result()
    _, out, _ = await buildctl(env, "status", handle.id)
    assert "outcome: partial" in out and "decision: approved by alice: accepted" in out


async def test_a_triage_retry_shows_what_it_waits_for_and_when(client, dirs, env, caplog):
    """#35.12: the triage read retrying for a file not yet written: status says the path, the
    attempt and when the next one comes (from the server's pending activity)."""
    slow = {**env, "TRIAGE_RETRY_INITIAL": "90s", "TRIAGE_RETRY_MAX": "90s"}
    async with running_worker(client, load_config(slow)), \
            AgentSim(dirs["tasks"], env, {"security_audit": triage_writer(dirs["audit"], None)}):
        handle = await start_pipeline(client, load_config(slow).task_queue, dirs["tasks"],
                                      "late")

        async def retrying() -> str | None:
            _, out, _ = await buildctl(env, "status", handle.id)
            return out if "waiting for" in out else None

        out = await eventually(retrying, 60, 0.5)
        path = dirs["audit"] / "late" / "triage-output.yml"
        assert re.search(rf"^waiting for {re.escape(str(path))} \(attempt 2 of 5, next in "
                         rf"(1|2) min\)$", out, re.M), out
        await handle.terminate("test over")
    waits = [r for r in caplog.records if r.getMessage().startswith("triage_waiting")]
    assert waits and waits[0].attempt == 1 and waits[0].max_attempts == 5
    assert waits[0].next_in_s == 90 and waits[0].levelname == "INFO"  # expected, not a warning


async def test_ended_builds_refuse_decisions_and_cancels_saying_how_they_ended(
        client, cfg, dirs, env, worker):
    """#35.7: approve/reject/cancel of an ended build: exit 7 and its real close status, not
    "not found" (nor a cancel the server silently accepts); status shows its summary."""
    audit = {"security_audit": triage_writer(dirs["audit"], {"info": ["clean"]})}
    async with AgentSim(dirs["tasks"], env, audit):
        done = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "over")
        result = await done.result()
    for command in (["approve", done.id, "--by", "alice"],
                    ["reject", done.id, "--by", "bob", "--reason", "late"],
                    ["cancel", done.id]):
        code, out, err = await buildctl(env, *command)
        assert (code, err.strip()) == (7, f"buildctl: build {done.id} already ended: "
                                          f"completed"), (command, out)
    code, out, err = await buildctl(env, "status", done.id)
    assert code == 0 and f"summary: {result.summary_path}" in out.splitlines(), err
    gone = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "gone")
    code, out, err = await buildctl(env, "cancel", gone.id)
    assert code == 0, err

    async def cancelled() -> bool:
        return (await gone.describe()).status.name == "CANCELED"

    await eventually(cancelled)
    code, out, err = await buildctl(env, "--json", "cancel", gone.id)
    assert code == 7 and json.loads(out) == {
        "error": f"build {gone.id} already ended: cancelled", "exit_code": 7}


async def test_without_a_worker_status_and_list_answer_at_once_and_say_so(client, cfg, dirs,
                                                                          env):
    """#35.8: no worker has ever polled (a queue nobody serves), then a worker that just
    stopped: status and list answer from the server within about a second of their own
    start-up (it was the 5 s query timeout, per running build) and say no worker answered."""
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    assert (await buildctl(env, "status", "no-such-build"))[0] == 4
    own = time.monotonic() - began  # start-up and one call: what the machine's load costs now
    never = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "unserved")
    for command in (["status", never.id], ["list"]):
        began = time.monotonic()
        code, out, err = await buildctl(env, *command)
        assert code == 0, err
        assert "no worker answered (is worker.py running?)" in out.splitlines()
        assert time.monotonic() - began < own + 2.5, command
    assert out.splitlines()[1].split()[0] == never.id
    await never.terminate("test over")
    async with running_worker(client, cfg), AgentSim(dirs["tasks"], env, {
            "build_prefab": lambda d, p: None}):
        stopped = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "stopped")
        await reaches_stage(stopped, "prefab")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
    for command in (["status", stopped.id], ["list"]):
        began = time.monotonic()
        code, out, err = await buildctl(env, *command)
        assert code == 0, err
        assert "no worker answered (is worker.py running?)" in out.splitlines()
        assert time.monotonic() - began < own + 3, command
        if command[0] == "status":  # what the server knows: the stage's task, from the memo
            assert f"task file: {path}" in out.splitlines()
    code, out, _ = await buildctl(env, "status", stopped.id, "--json")
    assert json.loads(out)["task_file"] == str(path)
    await stopped.terminate("test over")


async def test_list_has_a_header_filters_and_one_spelling_of_cancelled(client, cfg, dirs, env,
                                                                       worker):
    """#35.9: a header row, the build name, start time, status and stage or outcome;
    --running and --waiting; --json after the subcommand; `cancelled`, never CANCELED."""
    quiet_notifier(dirs["home"])
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["b1"]}),
                  "build_prefab": held_prefab("held", "gone")}
    async with AgentSim(dirs["tasks"], env, behaviours):
        dirs["tasks"].mkdir(parents=True, exist_ok=True)
        origin = make_origin(dirs["tasks"])
        waiting = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "parked",
                                       task_id=origin)
        held = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "held")
        gone = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "gone")
        await reaches_stage(gone, "prefab")  # its name is indexed by now
        await gone.cancel()
        await reaches_stage(waiting, "wait")
        await reaches_stage(held, "prefab")

        async def listed() -> list[dict[str, Any]] | None:
            _, out, _ = await buildctl(env, "list", "--json")
            rows = json.loads(out)["workflows"]
            return rows if any(r["status"] == "cancelled" for r in rows) else None

        rows = {row["workflow_id"]: row for row in await eventually(listed)}
        assert (rows[waiting.id]["stage"], rows[held.id]["stage"]) == ("wait", "prefab")
        assert rows[gone.id]["build_name"] == "gone"
        code, out, err = await buildctl(env, "list")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["WORKFLOW", "ID", "BUILD", "STARTED", "(UTC)", "STATUS",
                                    "STAGE/OUTCOME"]
        by_id = {line.split()[0]: line.split() for line in lines[1:]}
        assert by_id[gone.id][1] == "gone" and by_id[gone.id][4] == "cancelled"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", by_id[gone.id][2])
        assert by_id[waiting.id][4:] == ["running", "wait"]
        assert "canceled" not in out.lower().replace("cancelled", "")
        _, out, _ = await buildctl(env, "list", "--running", "--json")
        assert {r["workflow_id"] for r in json.loads(out)["workflows"]} == {waiting.id, held.id}
        code, out, _ = await buildctl(env, "list", "--waiting")
        assert [line.split()[0] for line in out.splitlines()[1:]] == [waiting.id]
        _, out, _ = await buildctl(env, "status", waiting.id)  # where a file decision goes
        assert f"originating task file: {TaskDirectory(dirs['tasks']).find(origin)}" in out
        _, out, _ = await buildctl(env, "status", gone.id, "--json")
        assert json.loads(out)["status"] == "cancelled"
        _, out, _ = await buildctl(env, "status", gone.id)
        assert out.splitlines()[0] == f"{gone.id} (BuildPipelineWorkflow): cancelled"
        for handle in (waiting, held):
            await handle.terminate("test over")


async def test_start_checks_the_plan_file_and_a_held_origin_first(client, cfg, dirs, env,
                                                                  worker, tmp_path):
    """#35.10: a plan file that is missing or not a file: exit 3, nothing started; every
    invalid argument named at once, in words; an origin a running build holds: exit 7 unless
    --allow-shared-origin."""
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    origin = make_origin(dirs["tasks"])
    missing = tmp_path / "no-such-plan.md"
    for plan, why in ((missing, "does not exist"), (tmp_path, "is not a regular file")):
        code, _, err = await buildctl(env, "start", "--build-name", "p", "--plan-path",
                                      str(plan), "--task-id", origin, "--agent", "dev")
        assert code == 3 and err.strip() == (f"buildctl: invalid arguments: --plan-path: "
                                             f"{plan} {why}")
    code, _, err = await buildctl(env, "start", "--build-name", "Bad_Name", "--plan-path",
                                  str(missing), "--task-id", "<id>", "--agent", "a/b")
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert ("--build-name: must be lower-case letters, digits and '-', starting with a letter "
            "or digit") in err
    assert "--task-id: must be 8-128" in err and "--agent: must be a plain name" in err
    assert f"--plan-path: {missing} does not exist" in err and "pattern" not in err
    assert [run async for run in client.list_workflows(f"TaskQueue = '{cfg.task_queue}'")] == []
    plan = plan_file(dirs)
    start = ["start", "--build-name", "shared", "--plan-path", plan, "--task-id", origin,
             "--agent", "dev"]
    code, out, err = await buildctl(env, "--json", *start)
    assert code == 0, err
    first = json.loads(out)["workflow_id"]

    async def visible() -> bool:
        return bool([run async for run in client.list_workflows(
            f"TaskQueue = '{cfg.task_queue}' AND ExecutionStatus = 'Running'")])

    await eventually(visible)
    code, _, err = await buildctl(env, *start)
    assert code == 7 and err.strip() == (
        f"buildctl: originating task {origin} is held by running build {first}; pass "
        f"--allow-shared-origin to start another on it")
    code, out, err = await buildctl(env, *start, "--allow-shared-origin", "--json")
    assert code == 0, err
    for workflow_id in (first, json.loads(out)["workflow_id"]):
        await client.get_workflow_handle(workflow_id).terminate("test over")


async def test_agent_text_reaches_the_terminal_inert(client, cfg, dirs, env, worker):
    """#36.8: a heartbeat with an OSC 52 clipboard write, cursor moves, a carriage return and
    a newline-forged `decision: approved` shows inert in `buildctl status`; in --json it stays
    the agent's data (JSON-escaped); a failure reason with escapes likewise."""
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "inert")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        code, _, err = await run_cli("heartbeat", "--task-file", str(path), HOSTILE, env=env)
        assert code == 0, err

        async def beating() -> str | None:
            _, out, _ = await buildctl(env, "status", handle.id)
            return out if "agent progress:" in out else None

        out = await eventually(beating)
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out)
        assert not any(line.startswith("decision:") for line in out.splitlines())
        assert "agent progress: \ufffd]52;c;ZXZpbA==\ufffd\ufffd[2J\ufffd[1;1Hall good " \
               "decision: approved decision: approved (" in out
        code, out, _ = await buildctl(env, "status", handle.id, "--json")
        assert "\x1b" not in out and json.loads(out)["agent_progress"]["message"] == HOSTILE
        token = yaml.safe_load(path.read_text())["payload"]["task_token"]
        code, _, err = await run_cli(token, "failed", HOSTILE, env=env)
        assert code == 0, err

        async def ended() -> str | None:
            _, out, _ = await buildctl(env, "status", handle.id)
            return out if "reason:" in out else None

        out = await eventually(ended)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out)
    assert not any(line.startswith("decision:") for line in out.splitlines())
