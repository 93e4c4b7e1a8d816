"""What our task files say: the upstream contract, or native tasks of the task-queue tooling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from stages import stage_named
from taskdir.documents import SOURCE_AGENT, TaskSpec, history_entry
from taskdir.moves import (  # noqa: F401  (their home is moves; long imported from here)
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL_STATUS,
    TERMINAL,
)

Vocabulary = Literal["upstream", "task-queue"]
# Originating-task statuses that decide a parked pipeline, and the verdict each carries.
DECISIONS = {"approved": "approved", "rejected": "rejected", "cancelled": "rejected",
             "failed": "rejected"}
WorkflowMode = Literal["semi-auto", "auto", "manual-then-auto"]
Priority = Literal["normal", "high", "urgent"]


def _tooling_type(upstream: str) -> str:
    """The tooling's task type of a stage (its upstream name stays in payload.stage)."""
    try:
        return stage_named(upstream).tooling_type
    except ValueError:
        return "build"


@dataclass(frozen=True)
class TaskStyle:
    """How we write task files; one per worker (TASK_VOCABULARY and friends)."""

    vocabulary: Vocabulary = "upstream"
    agent_map: Mapping[str, str] = field(default_factory=dict)
    workflow_mode: WorkflowMode = "semi-auto"
    priority: Priority = "normal"

    @property
    def awaiting_decision(self) -> str:
        """The originating task's status while the operator decides on blocks."""
        return "pending-approval" if self.vocabulary == "task-queue" else "input-required"

    def document(self, spec: TaskSpec, token_b64: str, created: datetime) -> dict[str, Any]:
        """A fresh task file's mapping, keys in the order the reader expects."""
        native = self.vocabulary == "task-queue"
        head: dict[str, Any] = {
            "id": spec.task_id,
            "created": created,
            "source_agent": SOURCE_AGENT,
            "target_agent": self.agent_map.get(spec.target_agent, spec.target_agent),
            "task_type": _tooling_type(spec.task_type) if native else spec.task_type,
            "risk_level": "low",
            "requires_approval": False,
        }
        if native:
            head["workflow_mode"] = self.workflow_mode
        payload = dict(spec.payload)
        if native:
            payload = {"stage": spec.task_type, "description": spec.summary,
                       "context_refs": [ref for ref in spec.context_refs if ref.startswith("/")],
                       "priority": self.priority, **payload}
            if spec.originating_task_id:
                payload["originating_task_id"] = spec.originating_task_id
            if spec.request:
                payload["request"] = spec.request
        return {
            **head,
            "status": "submitted",
            "summary": spec.summary,
            "ttl_days": 7,
            "payload": {**payload, "task_token": token_b64},
            "result": {"output": None, "completed_by": None, "completed_at": None},
            "history": [history_entry("submitted", spec.summary, moment=created)],
        }
