"""Every long duration at its production default, proven on Temporal's Java test server with
time-skipping (the SDK's own environment): days pass in seconds, nothing is shortened."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from config import WorkerConfig, load_config, parse_duration
from models import BlockDecision, BuildPlanInput, PhaseSpec
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import (
    eventually,
    files_of_type,
    progress_of,
    quiet_notifier,
    reaches_stage,
    running_worker,
    start_pipeline,
    task_files,
)
from testbed.timeskipping import production_env


def setup(dirs: dict[str, Path]) -> tuple[dict[str, str], WorkerConfig]:
    quiet_notifier(dirs["home"])
    env = production_env(dirs, f"durations-{uuid.uuid4().hex[:8]}")
    return env, load_config(env)


def blocked(dirs: dict[str, Path]) -> dict[str, Any]:
    return {"security_audit": triage_writer(dirs["audit"], {"blocks": ["root password"]})}


@contextlib.asynccontextmanager
async def parked_build(time_env: Any, dirs: dict[str, Path],
                       name: str) -> AsyncIterator[WorkflowHandle]:
    """A build at its production defaults whose audit found a block: parked, waiting."""
    env, config = setup(dirs)
    async with running_worker(time_env.client, config), AgentSim(
            dirs["tasks"], env, blocked(dirs), client=time_env.client):
        handle = await start_pipeline(time_env.client, config.task_queue, dirs["tasks"], name)
        await reaches_stage(handle, "wait", 60)
        yield handle


def origin_of(dirs: dict[str, Path]) -> dict[str, Any]:
    return next(d for d in task_files(dirs["tasks"]) if d["source_agent"] == "operator")


async def events(handle: WorkflowHandle) -> list[Any]:
    return list((await handle.fetch_history()).events)


def test_the_defaults_are_the_documented_ones(dirs):
    t = setup(dirs)[1].timings
    assert (t.block_wait_timeout, t.timeout_prefab, t.timeout_phase) == (
        7 * 86400, 2 * 3600, 24 * 3600)
    assert (t.triage_retry_initial, t.triage_retry_max, t.triage_max_attempts) == (120, 900, 5)


async def test_a_parked_build_times_out_after_exactly_seven_days(time_env, dirs):
    async with parked_build(time_env, dirs, "week") as handle:
        await time_env.sleep(timedelta(days=7) - timedelta(minutes=1))
        # a minute before the deadline: still waiting
        assert (await progress_of(handle)).stage == "wait"
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()  # the last minute passes
    assert caught.value.cause.type == "BlockWaitTimedOut"
    history = await events(handle)
    timers = [e for e in history if e.HasField("timer_started_event_attributes")]
    assert [t.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            for t in timers] == [timedelta(days=7)]
    fired = next(e for e in history if e.HasField("timer_fired_event_attributes"))
    waited = fired.event_time.ToDatetime() - timers[0].event_time.ToDatetime()
    assert abs(waited - timedelta(days=7)) < timedelta(seconds=1)  # server time, exactly 7 d
    summary = yaml.safe_load(next(dirs["summaries"].rglob("*.yml")).read_text())
    assert summary["outcome"] == "timed_out"
    assert origin_of(dirs)["status"] == "failed"


async def test_an_approval_on_day_six_passes(time_env, dirs):
    async with parked_build(time_env, dirs, "day6") as handle:
        await time_env.sleep(timedelta(days=6))
        await handle.signal("approve", BlockDecision(by="alice", reason="day six"))
        result = await handle.result()
    summary = yaml.safe_load(Path(result.summary_path).read_text())
    assert (summary["outcome"], summary["decided_by"]) == ("partial", "alice")
    assert origin_of(dirs)["status"] == "completed"


async def test_a_missing_triage_file_is_retried_on_the_documented_schedule(time_env, dirs):
    """2 min, 4, 8, then 15 (the cap): 29 minutes over 5 attempts, then the build fails."""
    env, config = setup(dirs)
    silent_audit = {"security_audit": triage_writer(dirs["audit"], None)}
    async with running_worker(time_env.client, config), AgentSim(
            dirs["tasks"], env, silent_audit, client=time_env.client):
        handle = await start_pipeline(time_env.client, config.task_queue, dirs["tasks"], "late")
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "triage file not written yet" in str(caught.value.cause.cause)
    history = await events(handle)
    triage = next(e for e in history if e.HasField("activity_task_scheduled_event_attributes")
                  and e.activity_task_scheduled_event_attributes.activity_type.name ==
                  "process_triage_output")
    policy = triage.activity_task_scheduled_event_attributes.retry_policy
    assert (policy.initial_interval.ToTimedelta(), policy.maximum_interval.ToTimedelta(),
            policy.maximum_attempts) == (timedelta(minutes=2), timedelta(minutes=15), 5)
    started = next(e for e in history if e.HasField("activity_task_started_event_attributes")
                   and e.activity_task_started_event_attributes.scheduled_event_id ==
                   triage.event_id)
    assert started.activity_task_started_event_attributes.attempt == 5
    spent = started.event_time.ToDatetime() - triage.event_time.ToDatetime()
    assert timedelta(minutes=29) <= spent < timedelta(minutes=30)


async def test_agent_stages_are_scheduled_with_their_default_limits(time_env, dirs):
    """The Java test server does not skip time while an activity completed asynchronously is
    outstanding (an agent stage), so the limit firing is proven on the dev server with short
    limits (test_build_plan.py, test_pipeline.py); here: the production limits themselves,
    as recorded in the schedule commands. Last in this module: a stage left outstanding keeps
    the test server from skipping time afterwards."""
    env, config = setup(dirs)
    async with running_worker(time_env.client, config), AgentSim(
            dirs["tasks"], env, {"build_prefab": lambda d, p: None}, client=time_env.client):
        handle = await start_pipeline(time_env.client, config.task_queue, dirs["tasks"], "2h")
        await eventually(lambda: files_of_type(dirs["tasks"], "build_prefab"), 60)
        history = await events(handle)
        plan = BuildPlanInput(plan_name="long-plan", phases=[
            PhaseSpec(number=1, agent_type="dev", description="never done")])
        phased = await time_env.client.start_workflow(
            "BuildPlanWorkflow", plan, id=f"plan-{config.task_queue}",
            task_queue=config.task_queue)
        await eventually(lambda: files_of_type(dirs["tasks"], "build_phase"), 60)
        phase_history = await events(phased)
        for running in (handle, phased):  # may have run out of (skipped) time already
            with contextlib.suppress(RPCError):
                await running.terminate("test over")
    prefab = next(e for e in history if e.HasField("activity_task_scheduled_event_attributes"))
    attributes = prefab.activity_task_scheduled_event_attributes
    assert attributes.start_to_close_timeout.ToTimedelta() == timedelta(hours=2)
    assert attributes.retry_policy.maximum_attempts == 1
    phase = next(e for e in phase_history
                 if e.HasField("activity_task_scheduled_event_attributes"))
    attributes = phase.activity_task_scheduled_event_attributes
    assert attributes.start_to_close_timeout.ToTimedelta() == timedelta(hours=24)
    assert attributes.retry_policy.maximum_attempts == 2


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200),
                                          ("7d", 7 * 86400), ("250ms", 0.25), (" 1.5h ", 5400)])
def test_parse_duration_reads_every_documented_form(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "0s", "-5m", "5w", "1h30m", "1e3", "7 days"])
def test_parse_duration_refuses_what_is_not_a_positive_duration(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
