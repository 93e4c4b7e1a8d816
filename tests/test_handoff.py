"""workflows.handoff: which finished tasks a run may forget without changing what it awaits."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.exceptions import ActivityError, RetryState

from workflows.handoff import Handoff, finished_quietly


def failed_activity() -> ActivityError:
    return ActivityError("settle failed", scheduled_event_id=1, started_event_id=2,
                         identity="w", activity_type="settle_task", activity_id="1",
                         retry_state=RetryState.MAXIMUM_ATTEMPTS_REACHED)


async def test_only_what_settled_would_pass_without_waiting_or_raising_is_forgotten():
    loop = asyncio.get_running_loop()
    pending, done, failed, broken, cancelled = (loop.create_future() for _ in range(5))
    done.set_result(True)
    failed.set_exception(failed_activity())
    broken.set_exception(RuntimeError("not an activity failure"))
    cancelled.cancel()
    assert not finished_quietly(pending)  # still to be awaited
    assert finished_quietly(done)
    assert finished_quietly(failed, ActivityError)  # `settled` suppresses exactly this
    assert not finished_quietly(failed)  # a step-end action's error would reach `settled`
    assert not finished_quietly(broken, ActivityError)  # it would raise there
    assert not finished_quietly(cancelled, ActivityError)  # CancelledError would too


async def test_a_finished_settlement_is_dropped_unless_settled_is_going_through_them():
    loop = asyncio.get_running_loop()
    handoff = Handoff()
    quiet, failed, broken = (loop.create_future() for _ in range(3))
    handoff._settling = [quiet, failed, broken]  # type: ignore[list-item]
    quiet.set_result(True)
    failed.set_exception(failed_activity())
    broken.set_exception(RuntimeError("settled must raise this"))
    handoff._draining = True
    for task in (quiet, failed, broken):
        handoff._forget(task)
    assert handoff._settling == [quiet, failed, broken]  # the list settled walks is left alone
    handoff._draining = False
    for task in (quiet, failed, broken):
        handoff._forget(task)
    assert handoff._settling == [broken]  # its input (the agent's output) is all that stays


async def test_a_finished_step_end_action_is_dropped_as_it_finishes():
    handoff = Handoff()
    ran: list[str] = []

    def fail() -> None:
        raise RuntimeError("settled must raise this")

    handoff._at_step_end(lambda: ran.append("quiet"))
    handoff._at_step_end(fail)
    assert len(handoff._step_end) == 2  # both still to run
    await asyncio.sleep(0)  # they run, then their done-callbacks
    await asyncio.sleep(0)
    assert ran == ["quiet"]
    assert len(handoff._step_end) == 1  # only the one `settled` would still raise
    with pytest.raises(RuntimeError, match="settled must raise this"):
        await handoff.settled()
