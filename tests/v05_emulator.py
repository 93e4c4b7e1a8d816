"""Test-only stand-in for v0.5's workflows: exactly v0.5's calls and result decoding.

Written from the recorded facts in tests/histories/v0.5/ (names, positional arguments,
timeouts, retries), not from v0.5's code. Activity names are strings here on purpose: this
is another program calling ours across the task queue. Results are decoded with the types
v0.5 used, so a result of the wrong shape fails its workflow task as it did on v0.5.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

AGENT = RetryPolicy(maximum_attempts=1, non_retryable_error_types=["PhaseFailedError"])
NoneType = type(None)


class V05Result(BaseModel):
    """An agent's answer as v0.5's CLI sends it."""

    status: str
    output: str = ""


class V05Triage(BaseModel):
    blocks: list[str] = []
    flags: list[str] = []
    info: list[str] = []


async def _call(name: str, args: list[Any], result_type: type, **options: Any) -> Any:
    return await workflow.execute_activity(name, args=args, result_type=result_type,
                                           **options)


async def _agent(name: str, args: list[Any], hours: float) -> V05Result:
    return await _call(name, args, V05Result, start_to_close_timeout=timedelta(hours=hours),
                       retry_policy=AGENT)


@workflow.defn(name="BuildPipelineWorkflow", sandboxed=False)
class V05PipelineWorkflow:
    @workflow.run
    async def run(self, params: dict[str, str]) -> dict[str, str]:
        build, plan, agent = params["build_name"], params["plan_path"], params["target_agent"]
        task_id = params["task_id"]
        started = workflow.now()
        await _agent("prefab_scaffolding", [build, plan], 2)
        await _agent("implement_build", [build, task_id, agent], 4)
        await _agent("request_security_audit", [build, plan], 4)
        triage: V05Triage = await _call(
            "process_triage_output", [build], V05Triage, start_to_close_timeout=timedelta(hours=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(minutes=2),
                                     maximum_interval=timedelta(minutes=15), maximum_attempts=5))
        phases = ["prefab", "implement", "audit", "triage"]
        if triage.flags:
            await _agent("apply_flag_fixes", [build, triage.flags, agent], 2)
            phases.append("fixes")
        if triage.blocks:
            await _call("notify_blocks", [build, task_id, triage.blocks], NoneType,
                        start_to_close_timeout=timedelta(minutes=30),
                        retry_policy=RetryPolicy(maximum_attempts=3))
            await _call("wait_for_block_resolution", [build, task_id], NoneType,
                        schedule_to_close_timeout=timedelta(days=7),
                        heartbeat_timeout=timedelta(minutes=10),
                        retry_policy=RetryPolicy(maximum_attempts=1))
        close = await _agent("close_build", [build, agent], 2)
        phases.append("close")
        path = await _call(
            "summarize_workflow",
            [workflow.info().workflow_id, build, started.isoformat(), workflow.now().isoformat(),
             phases, len(triage.blocks), len(triage.flags), plan, close.output or ""], str,
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3))
        return {"status": "complete", "workflow_id": workflow.info().workflow_id,
                "summary_path": path}


@workflow.defn(name="BuildPlanWorkflow", sandboxed=False)
class V05PlanWorkflow:
    @workflow.run
    async def run(self, plan: dict[str, Any]) -> dict[str, Any]:
        for phase in plan["phases"]:
            result: V05Result = await _call(
                "execute_build_phase",
                [{"plan_name": plan["plan_name"], "phase_number": phase["number"],
                  "agent_type": phase["agent_type"], "description": phase["description"],
                  "context_refs": phase.get("context_refs", []),
                  "workflow_id": workflow.info().workflow_id}], V05Result,
                start_to_close_timeout=timedelta(hours=24),
                retry_policy=RetryPolicy(maximum_attempts=2,
                                         non_retryable_error_types=["PhaseFailedError"]))
            if result.status != "success":
                raise ApplicationError(f"Phase {phase['number']} failed: {result.output}",
                                       type="PhaseFailedError")
        return {"status": "complete", "phases_run": len(plan["phases"])}


V05_WORKFLOWS = [V05PipelineWorkflow, V05PlanWorkflow]
