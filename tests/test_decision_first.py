"""The operator's decision from 0.11 (workflows/build_pipeline.py, activities/blocks.py): blocks
notified as soon as triage finds them, in their own words, wherever the operator looks; a failed
notification stands as *Attention*; every ending leaves a summary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from temporalio.client import WorkflowFailureError

from config import load_config
from models import BlockDecision, BuildPlanInput, PhaseSpec
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import (
    current_details,
    eventually,
    file_status,
    progress_of,
    reaches_stage,
    running_worker,
    start_pipeline,
    worker_env,
)
from workflows.build_pipeline import BuildPipelineWorkflow


def recording_notifier(home: Path, works: bool = True) -> tuple[Path, Path]:
    """A SEND_MATRIX_SCRIPT that records each message, and fails while HOME/broken exists."""
    sent, broken = home / "sent.txt", home / "broken"
    script = home / "send-matrix.sh"
    script.write_text(f'#!/bin/sh\n[ -e {broken} ] && {{ echo "matrix is down" >&2; exit 3; }}\n'
                      f'printf "%s\\n--\\n" "$2" >> {sent}\n')
    script.chmod(0o755)
    if not works:
        broken.touch()
    return sent, broken


def held(release: list[bool]):
    """A behaviour that holds its stage until RELEASE holds True."""
    return lambda _document, _path: ("success", "fixed") if release else None


def origin_of(dirs: dict[str, Path]) -> str:
    for path in dirs["tasks"].glob("*.yml"):
        document = yaml.safe_load(path.read_text())
        if document["source_agent"] == "operator":
            return document["id"]
    raise AssertionError("no originating task")


def summary_of(dirs: dict[str, Path]) -> dict:
    paths = list(dirs["summaries"].rglob("*.yml"))
    assert len(paths) == 1, paths
    return yaml.safe_load(paths[0].read_text())


async def test_blocks_are_notified_while_fixes_run_and_may_be_decided_then(client, cfg, dirs,
                                                                        env, worker):
    """#35.3: the notification does not wait for the fixes stage; a decision taken meanwhile
    counts once fixes end (docs/pipeline.md: the operator may decide while fixes run)."""
    sent, _ = recording_notifier(dirs["home"])
    release: list[bool] = []
    triage = {"blocks": [{"title": "Hardcoded root password", "severity": "high",
                          "file": "db/init.sql", "line": 12}], "flags": ["pin the image"]}
    behaviours = {"security_audit": triage_writer(dirs["audit"], triage),
                  "security_fix": held(release)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "early")
        progress = await reaches_stage(handle, "fixes")
        assert progress.findings == ["[high] Hardcoded root password: db/init.sql:12"]
        assert progress.flag_findings == ["pin the image"]
        assert progress.triage_path.endswith("early/triage-output.yml")
        await eventually(lambda: sent.is_file() and "Hardcoded root password" in
                         sent.read_text())
        assert (await progress_of(handle)).stage == "fixes"  # notified before fixes ended
        origin = origin_of(dirs)
        await eventually(lambda: file_status(dirs["tasks"], origin) == "input-required")
        verdict = await handle.execute_update(BuildPipelineWorkflow.approve_blocks,
                                              BlockDecision(by="alice", reason="test db"))
        assert verdict == "approved"
        progress = await progress_of(handle)
        assert progress.stage == "fixes" and progress.decided_by == "alice"
        release.append(True)
        result = await handle.result()
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert summary["outcome"] == "partial" and summary["decided_by"] == "alice"
    assert summary["reason"] == "test db"
    assert summary["blocks"] == ["[high] Hardcoded root password: db/init.sql:12"]
    assert summary["flags"] == ["pin the image"]
    assert sent.read_text().count("[ACTION]") == 1


async def test_a_failed_notification_stands_as_attention_until_a_retry_gets_through(
        client, cfg, dirs, env, worker):
    """#35.4: a notification no backend took is never a silent "done"."""
    sent, broken = recording_notifier(dirs["home"], works=False)
    triage = {"blocks": ["docker socket mounted"]}
    behaviours = {"security_audit": triage_writer(dirs["audit"], triage)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "unheard")

        async def alerted() -> str | None:
            alert = (await progress_of(handle)).alert or ""
            return alert if "block notification failed" in alert else None

        alert = await eventually(alerted)
        assert "script: " in alert and "matrix is down" in alert and "try 1 of 5" in alert
        assert "**Attention:** block notification failed" in await current_details(handle)
        assert not sent.exists()
        broken.unlink()
        await eventually(lambda: sent.is_file() and "docker socket mounted" in
                         sent.read_text(), timeout=60)
        await eventually(lambda: _no_alert(handle))
        broken.touch()  # failing again: once decided, nothing is retried or left standing
        await handle.signal(BuildPipelineWorkflow.reject, BlockDecision(by="bob"))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    progress = await progress_of(handle)
    assert progress.alert is None and progress.outcome == "rejected"


async def _no_alert(handle) -> bool:
    return (await progress_of(handle)).alert is None


async def test_a_decision_clears_a_failed_notifications_attention_at_once(client, server, dirs):
    """The decision makes a failed notification moot: its *Attention* leaves with the decision,
    not at the notification's next try (20 s away here)."""
    env = worker_env(server, dirs, BLOCK_CHECK_INTERVAL="20s")
    config = load_config(env)
    recording_notifier(dirs["home"], works=False)
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["socket mounted"]}),
                  "build_closeout": lambda _document, _path: None}  # the run goes on, held
    async with running_worker(client, config), AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, config.task_queue, dirs["tasks"], "moot")

        async def alerted() -> str | None:
            alert = (await progress_of(handle)).alert or ""
            return alert if "block notification failed" in alert else None

        assert "trying again in 20 s" in await eventually(alerted)
        await handle.execute_update(BuildPipelineWorkflow.approve_blocks,
                                    BlockDecision(by="alice", reason="known"))
        await eventually(lambda: _no_alert(handle), timeout=10)
        assert "Attention" not in await current_details(handle)
        assert (await progress_of(handle)).outcome is None  # cleared by the decision, not the end
        await handle.terminate("test over")


async def test_one_bounded_message_for_many_blocks(client, cfg, dirs, env, worker):
    """#36: a triage file with 1,000 blocks sends one message per backend, not 1,000; the
    operator's views carry a bounded list beside the full count."""
    sent, _ = recording_notifier(dirs["home"])
    triage = {"blocks": [f"finding number {n}" for n in range(1, 1001)]}
    behaviours = {"security_audit": triage_writer(dirs["audit"], triage)}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "many")
        progress = await reaches_stage(handle, "wait")
        assert progress.blocks == 1000 and len(progress.findings) == 20
        assert progress.findings[0] == "finding number 1"
        await eventually(lambda: sent.is_file() and "[ACTION]" in sent.read_text())
        text = sent.read_text()
        assert text.count("[ACTION]") == 1 and "1000 security block(s)" in text
        assert "10. `finding number 10`\n… and 990 more" in text
        shown = await current_details(handle)
        assert "**Blocks (1000):**" in shown and "… and 990 more" in shown
        await handle.signal(BuildPipelineWorkflow.reject, BlockDecision(by="bob"))
        with pytest.raises(WorkflowFailureError):
            await handle.result()


async def test_agent_markdown_stays_text_in_the_web_ui(client, cfg, dirs, env, worker):
    """#36.9, #35.2: the blocks' words are in Current Details, escaped."""
    recording_notifier(dirs["home"])
    evil = "# Approved [click](http://evil.example) ![x](http://evil.example/x.png) <!-- -->"
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": [evil]})}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "marked")
        await reaches_stage(handle, "wait")
        shown = await current_details(handle)
        assert "1. \\# Approved \\[click\\]\\(http://evil.example\\) \\!\\[x\\]" in shown
        assert "](http" not in shown and "<!--" not in shown
        await handle.signal(BuildPipelineWorkflow.approve, BlockDecision(by="alice"))
        await handle.result()
        shown = await current_details(handle)
    assert "**Ended:** partial" in shown and "nothing (running)" not in shown
    assert "**Decision:** approved by alice" in shown


async def test_a_failed_build_leaves_its_summary_and_says_how_it_ended(client, cfg, dirs, env,
                                                                      worker):
    """#35.6, #35.7: a build its agent failed writes its summary with the reason."""
    behaviours = {"build_plan": lambda d, p: ("failed", "compiler exploded")}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "failing")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    summary = summary_of(dirs)
    assert summary["outcome"] == "failed" and "compiler exploded" in summary["ending"]
    assert summary["phases_completed"] == ["prefab"]
    progress = await progress_of(handle)
    assert progress.outcome == "failed" and progress.summary_path
    assert Path(progress.summary_path) == next(dirs["summaries"].rglob("*.yml"))
    shown = await current_details(handle)
    assert "**Ended:** failed" in shown and "nothing (running)" not in shown


async def test_a_cancelled_build_leaves_its_summary(client, cfg, dirs, env, worker):
    release: list[bool] = []
    async with AgentSim(dirs["tasks"], env, {"build_plan": held(release)}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "stopped")
        await reaches_stage(handle, "implement")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    summary = summary_of(dirs)
    assert summary["outcome"] == "cancelled" and summary["ending"].endswith("cancelled")
    assert (await progress_of(handle)).outcome == "cancelled"


async def test_a_plan_leaves_a_summary_of_its_phases(client, cfg, dirs, env, worker):
    """#35.6: BuildPlanWorkflow writes one record: each phase and how it ended."""
    behaviours = {"build_phase": lambda d, p: (
        ("failed", "tests red") if d["payload"]["phase_number"] == 2 else ("success", "ok"))}
    plan = BuildPlanInput(plan_name="two-phases", phases=[
        PhaseSpec(number=1, agent_type="dev", description="one"),
        PhaseSpec(number=2, agent_type="ops", description="two"),
        PhaseSpec(number=3, agent_type="dev", description="three")])
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await client.start_workflow("BuildPlanWorkflow", plan, id="plan-summary",
                                             task_queue=cfg.task_queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    summary = summary_of(dirs)
    assert summary["plan_name"] == "two-phases" and summary["outcome"] == "failed"
    assert [(p["number"], p["outcome"]) for p in summary["phases"]] == [
        (1, "completed"), (2, "failed"), (3, "not run")]
    assert summary["phases"][0]["output"] == "ok" and "tests red" in summary["ending"]


async def test_an_earlier_builds_triage_file_is_never_read_as_this_ones(client, cfg, dirs,
                                                                         env, worker):
    """A build of the same name as an earlier one, whose security agent writes nothing, must
    not close on the earlier build's clean triage file: it is set aside at the audit's
    dispatch, and this build waits for its own (here: none comes, the triage read fails)."""
    recording_notifier(dirs["home"])
    clean = {"security_audit": triage_writer(dirs["audit"], {"info": ["fine"]})}
    async with AgentSim(dirs["tasks"], env, clean):
        first = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "again")
        await first.result()
    silent = {"security_audit": triage_writer(dirs["audit"], None)}
    async with AgentSim(dirs["tasks"], env, silent):
        second = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "again")
        with pytest.raises(WorkflowFailureError) as caught:
            await second.result()
    assert "triage file not written yet" in str(caught.value.cause.cause)
    folder = dirs["audit"] / "again"
    assert not (folder / "triage-output.yml").exists()
    assert len(list(folder.glob("triage-output.yml.*.previous"))) == 1
    assert f"- Run: {second.id} (" in (folder / "request.md").read_text()
