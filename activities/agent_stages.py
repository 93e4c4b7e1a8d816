"""The agent-dispatching activities: each writes one task file and waits for its agent."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import instructions
from activities.deps import Deps
from activities.dispatch import current_task_id, dispatch_and_suspend
from activities.lifecycle import TaskLifecycle
from exceptions import UnsafePathError
from models import (
    AUDIT_AGENT,
    DISPATCH_STAGE,
    PREFAB_AGENT,
    STAGE_ACTIVITY,
    BuildPhaseInput,
    BuildPhaseResult,
    StageKind,
    StageTask,
)
from safeio.writing import write_private
from taskdir import TaskSpec, iso, utc_now
from triage import bounded_findings


class AgentStages:
    """`dispatch_stage` for our runs; the v0.5 names keep v0.5's calls for runs it started."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=DISPATCH_STAGE)
    async def dispatch_stage(self, task: StageTask) -> BuildPhaseResult:
        """Write the stage's task file (identity decided by the workflow), then suspend."""
        await self._dispatch(task)

    @activity.defn(name="prefab_scaffolding")
    async def prefab_scaffolding(self, build_name: str, plan_path: str) -> BuildPhaseResult:
        await self._dispatch(_v05("build_prefab", PREFAB_AGENT, build_name,
                                  plan_path=plan_path))

    @activity.defn(name="implement_build")
    async def implement_build(self, build_name: str, originating_task_id: str,
                              target_agent: str) -> BuildPhaseResult:
        await self._dispatch(_v05("build_plan", target_agent, build_name,
                                  originating_task_id=originating_task_id))

    @activity.defn(name="request_security_audit")
    async def request_security_audit(self, build_name: str,
                                     plan_path: str) -> BuildPhaseResult:
        await self._dispatch(_v05("security_audit", AUDIT_AGENT, build_name,
                                  plan_path=plan_path))

    @activity.defn(name="apply_flag_fixes")
    async def apply_flag_fixes(self, build_name: str, flags: list[str],
                               target_agent: str) -> BuildPhaseResult:
        await self._dispatch(_v05("security_fix", target_agent, build_name, flags=flags))

    @activity.defn(name="close_build")
    async def close_build(self, build_name: str, target_agent: str) -> BuildPhaseResult:
        await self._dispatch(_v05("build_closeout", target_agent, build_name))

    @activity.defn(name="execute_build_phase")
    async def execute_build_phase(self, phase: BuildPhaseInput) -> BuildPhaseResult:
        fields = phase.model_dump(exclude={"agent_type"})
        await self._dispatch(StageTask(
            task_id=current_task_id(f"{STAGE_ACTIVITY['build_phase']}/{phase.phase_number}"),
            kind="build_phase", target_agent=phase.agent_type, build=phase.plan_name,
            fields=fields, context_refs=phase.context_refs))

    async def _dispatch(self, task: StageTask) -> NoReturn:
        try:
            await self._write_and_suspend(task)
        except UnsafePathError as err:  # a planted link or foreign directory: not retried
            raise ApplicationError(str(err), type="UnsafePathError",
                                   non_retryable=True) from None

    async def _write_and_suspend(self, task: StageTask) -> NoReturn:
        fields = dict(task.fields)
        refs, request = list(task.context_refs), None
        if task.kind == "security_audit":
            output_dir = self.deps.config.audit_dir / task.build
            request = str(output_dir / "request.md")
            text = audit_request(task.build, fields["plan_path"], str(output_dir))
            await asyncio.to_thread(write_private, output_dir / "request.md",
                                    text.encode("utf-8"), self.deps.config.audit_dir)
            fields.update(audit_request_path=request, output_dir=str(output_dir))
            refs.append(request)
        if task.kind == "security_fix":
            fields["flags"], cut = bounded_findings(fields["flags"])
            if cut:
                fields["flags_cut"] = cut
        spec = TaskSpec(
            task_id=task.task_id, target_agent=task.target_agent, task_type=task.kind,
            summary=instructions.summary(task.kind, fields),
            payload={**fields, "instruction": instructions.for_stage(task.kind, fields) + "\n"
                     + instructions.progress_line(
                         self.deps.config.timings.agent_heartbeat_timeout)},
            originating_task_id=task.originating_task_id, context_refs=tuple(refs),
            request=request)
        settlement = task.settle
        then = None if settlement is None else (lambda: TaskLifecycle(self.deps).settle(settlement))
        await dispatch_and_suspend(self.deps, spec, task.build, STAGE_ACTIVITY[task.kind], then,
                                   task.note)


def _v05(kind: StageKind, agent: str, build: str, **fields: Any) -> StageTask:
    """A v0.5 call's stage: its task id derived from the run, as v0.5 passes none."""
    return StageTask(task_id=current_task_id(STAGE_ACTIVITY[kind]), kind=kind,
                     target_agent=agent, build=build, fields={"build_name": build, **fields})


def audit_request(build_name: str, plan_path: str, output_dir: str) -> str:
    """The request.md the security agent reads."""
    return f"""# Security audit request: {build_name}

- Requested by: temporal-build-worker (BuildPipelineWorkflow)
- Date: {iso(utc_now())}
- Plan: {plan_path}

## Scope
- Credential exposure and hardcoded secrets
- Privilege escalation
- Network exposure
- File permissions
- Container security

## Expected output (in {output_dir})
1. `audit.md`: the audit report.
2. `triage-output.yml` with this schema (every list may be empty, but say so):

```yaml
blocks:            # need an operator decision before the build can close
  - description: ...
flags:             # fixable by the build agent; dispatched as a security_fix task
  - description: ...
info:              # informational only
  - description: ...
```

## Completing
Finish the task with the `complete_activity.py` command given in your task file's
`payload.instruction`, passing the path of `audit.md` as the output.
"""
