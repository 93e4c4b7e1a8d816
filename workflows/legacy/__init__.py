"""Runs v0.5 started, continued with v0.5's exact commands: the one door to them.

A native workflow's `run` asks `started_by_v05()` first and, when it is, hands the run to
`V05Pipeline(self)` or `V05Plan(self)`. Nothing else of ours imports from here.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.legacy.pipeline import V05Pipeline
    from workflows.legacy.plan import V05Plan
    from workflows.versions import started_by_v05


__all__ = ["V05Pipeline", "V05Plan", "started_by_v05"]
