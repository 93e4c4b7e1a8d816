"""The agent-dispatching activities: each writes one task file and waits for its agent."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities import instructions
from activities.deps import Deps
from activities.dispatch import dispatch_and_suspend
from files import write_private
from models import BuildPhaseInput, BuildPhaseResult
from taskfiles import iso, utc_now
from triage import neutralise, wrap_findings


class AgentStages:
    """prefab, implement, audit, fixes, close and build phases."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="prefab_scaffolding")
    async def prefab_scaffolding(self, build_name: str, plan_path: str) -> BuildPhaseResult:
        await dispatch_and_suspend(
            self.deps, stage_key="prefab_scaffolding", target_agent="claudebox",
            task_type="build_prefab", build=build_name,
            summary=f"Prefab scaffolding for build '{build_name}'",
            payload={"build_name": build_name, "plan_path": plan_path,
                     "instruction": instructions.prefab(build_name, plan_path)})

    @activity.defn(name="implement_build")
    async def implement_build(self, build_name: str, originating_task_id: str,
                              target_agent: str) -> BuildPhaseResult:
        await dispatch_and_suspend(
            self.deps, stage_key="implement_build", target_agent=target_agent,
            task_type="build_plan", build=build_name, summary=f"Implement build: {build_name}",
            payload={"build_name": build_name, "originating_task_id": originating_task_id,
                     "instruction": instructions.implement(build_name, originating_task_id)})

    @activity.defn(name="request_security_audit")
    async def request_security_audit(self, build_name: str,
                                     plan_path: str) -> BuildPhaseResult:
        output_dir = self.deps.config.audit_dir / build_name
        request_path = output_dir / "request.md"
        text = audit_request(build_name, plan_path, str(output_dir))
        await asyncio.to_thread(write_private, request_path, text.encode("utf-8"),
                                self.deps.config.audit_dir)
        await dispatch_and_suspend(
            self.deps, stage_key="request_security_audit", target_agent="security-agent",
            task_type="security_audit", build=build_name,
            summary=f"Security audit for build '{build_name}'",
            payload={"build_name": build_name, "plan_path": plan_path,
                     "audit_request_path": str(request_path), "output_dir": str(output_dir),
                     "instruction": instructions.security_audit(
                         build_name, str(request_path), str(output_dir))})

    @activity.defn(name="apply_flag_fixes")
    async def apply_flag_fixes(self, build_name: str, flags: list[str],
                               target_agent: str) -> BuildPhaseResult:
        wrapped = wrap_findings(flags)
        await dispatch_and_suspend(
            self.deps, stage_key="apply_flag_fixes", target_agent=target_agent,
            task_type="security_fix", build=build_name,
            summary=f"Apply security flag fixes for build '{build_name}' ({len(flags)} items)",
            payload={"build_name": build_name, "flags": [neutralise(f) for f in flags],
                     "instruction": instructions.flag_fixes(build_name, wrapped, len(flags))})

    @activity.defn(name="close_build")
    async def close_build(self, build_name: str, target_agent: str) -> BuildPhaseResult:
        await dispatch_and_suspend(
            self.deps, stage_key="close_build", target_agent=target_agent,
            task_type="build_closeout", build=build_name,
            summary=f"Close out build '{build_name}'",
            payload={"build_name": build_name, "instruction": instructions.closeout(build_name)})

    @activity.defn(name="execute_build_phase")
    async def execute_build_phase(self, phase: BuildPhaseInput) -> BuildPhaseResult:
        one_line = " ".join(phase.description.split())[:200]
        await dispatch_and_suspend(
            self.deps, stage_key=f"execute_build_phase/{phase.phase_number}",
            target_agent=phase.agent_type, task_type="build_phase", build=phase.plan_name,
            summary=f"Build phase {phase.phase_number}: {one_line}",
            payload={"description": phase.description, "plan_name": phase.plan_name,
                     "phase_number": phase.phase_number, "context_refs": phase.context_refs,
                     "workflow_id": phase.workflow_id,
                     "instruction": instructions.phase(phase.phase_number, phase.description,
                                                       phase.plan_name, phase.context_refs)})


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
2. `triage-output.yml` with this schema (every list may be empty):

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
