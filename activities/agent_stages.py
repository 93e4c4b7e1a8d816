"""dispatch_stage: write one agent stage's task file, then wait (suspended) for its agent."""

from __future__ import annotations

import asyncio
from typing import NoReturn

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import instructions
from activities.deps import Deps
from activities.dispatch import dispatch_and_suspend
from activities.lifecycle import TaskLifecycle
from contract import DISPATCH_STAGE
from exceptions import UnsafePathError
from models import BuildPhaseResult, StageTask
from safeio.writing import write_private
from stages import AUDIT, FIXES, stage_named
from taskdir import TaskSpec, iso, utc_now
from triage import bounded_findings


class AgentStages:
    """The activity of every agent stage our runs hand out (v0.5's: activities/legacy.py)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=DISPATCH_STAGE)
    async def dispatch_stage(self, task: StageTask) -> BuildPhaseResult:
        """Write the stage's task file (identity decided by the workflow), then suspend."""
        await self.dispatch(task)

    async def dispatch(self, task: StageTask) -> NoReturn:
        try:
            await self._write_and_suspend(task)
        except UnsafePathError as err:  # a planted link or foreign directory: not retried
            raise ApplicationError(str(err), type="UnsafePathError",
                                   non_retryable=True) from None

    async def _write_and_suspend(self, task: StageTask) -> NoReturn:
        stage = stage_named(task.kind)
        fields = dict(task.fields)
        refs, request = list(task.context_refs), None
        if stage is AUDIT:
            output_dir = self.deps.config.audit_dir / task.build
            request = str(output_dir / "request.md")
            text = audit_request(task.build, fields["plan_path"], str(output_dir))
            await asyncio.to_thread(write_private, output_dir / "request.md",
                                    text.encode("utf-8"), self.deps.config.audit_dir)
            fields.update(audit_request_path=request, output_dir=str(output_dir))
            refs.append(request)
        if stage is FIXES:
            fields["flags"], cut = bounded_findings(fields["flags"])
            if cut:
                fields["flags_cut"] = cut
        summary, instruction = instructions.texts(stage, fields)
        spec = TaskSpec(
            task_id=task.task_id, target_agent=task.target_agent, task_type=stage.upstream,
            summary=summary,
            payload={**fields, "instruction": instruction + "\n" + instructions.progress_line(
                         self.deps.config.timings.agent_heartbeat_timeout)},
            originating_task_id=task.originating_task_id, context_refs=tuple(refs),
            request=request)
        settlement = task.settle
        then = None if settlement is None else (lambda: TaskLifecycle(self.deps).settle(settlement))
        await dispatch_and_suspend(self.deps, spec, task.build, stage.activity, then, task.note)


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
