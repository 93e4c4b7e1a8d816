"""Test stand-in for the platform's task-queue tooling (server moves and the dispatcher tick).

Written from the facts in TASK-QUEUE.md, not from the tooling's code: every move takes the
exclusive flock on `.locks/<id>.lock`, appends a history entry naming the actor, keeps keys it
does not know, and rewrites the file with the process's default mode (0644 under umask 022),
as the real server does. It reads files with PyYAML's pure-Python safe loader.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

STATUSES = ("submitted", "approved", "pending-approval", "in-progress", "parked",
            "routing-failed", "completed", "failed", "cancelled")
TERMINAL = ("completed", "failed", "cancelled")
TASK_TYPES = ("build", "deploy", "fix", "research", "review", "audit", "notify", "docs",
              "ticket_audit", "ticket_audit_complete", "workflow")
WORKFLOW_MODES = ("semi-auto", "auto", "manual-then-auto")


class MoveRefused(Exception):
    """The tooling refuses this move (wrong actor, wrong status, terminal task)."""


class TaskQueueTool:
    """Moves on one task directory, as agents and operators make them through the server."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- files ------------------------------------------------------------------------------

    def path_of(self, task_id: str, folder: str = "") -> Path:
        place = self.root / folder if folder else self.root
        for path in sorted(place.glob("*.yml")):
            with contextlib.suppress(OSError, yaml.YAMLError, TypeError, KeyError):
                if yaml.safe_load(path.read_text()).get("id") == task_id:
                    return path
        raise KeyError(f"no task {task_id} in {place}")

    def read(self, task_id: str) -> dict[str, Any]:
        return yaml.safe_load(self.path_of(task_id).read_text())

    def tasks(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.root.glob("*.yml")):
            with contextlib.suppress(OSError, yaml.YAMLError):
                document = yaml.safe_load(path.read_text())
                if isinstance(document, dict):
                    found.append(document)
        return found

    @contextlib.contextmanager
    def _locked(self, task_id: str) -> Iterator[Path]:
        (self.root / ".locks").mkdir(exist_ok=True)
        with open(self.root / ".locks" / f"{task_id}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self.path_of(task_id)

    def _write(self, path: Path, document: dict[str, Any]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(document, sort_keys=False))  # default mode, like it
        os.replace(tmp, path)

    def _move(self, task_id: str, status: str, actor: str, note: str,
              allowed_from: tuple[str, ...] | None, **extra: Any) -> dict[str, Any]:
        with self._locked(task_id) as path:
            document = yaml.safe_load(path.read_text())
            current = document.get("status")
            if current in TERMINAL:
                raise MoveRefused(f"task {task_id} is {current}: terminal tasks are immutable")
            if allowed_from is not None and current not in allowed_from:
                raise MoveRefused(f"{current} -> {status} is not a move the tooling makes")
            document["status"] = status
            document.update(extra)
            document.setdefault("history", []).append(
                {"timestamp": datetime.now(UTC), "status": status, "actor": actor,
                 "note": note})
            self._write(path, document)
            return document

    # -- agents -----------------------------------------------------------------------------

    def claim(self, task_id: str, agent: str) -> None:
        self._check_agent(task_id, agent)
        self._move(task_id, "in-progress", agent, "claimed", ("approved",))

    def complete(self, task_id: str, agent: str, output: str) -> None:
        self._check_agent(task_id, agent)
        now = datetime.now(UTC)
        self._move(task_id, "completed", agent, "done", ("in-progress",),
                   result={"output": output, "completed_by": agent, "completed_at": now})

    def fail(self, task_id: str, agent: str, why: str) -> None:
        self._check_agent(task_id, agent)
        self._move(task_id, "failed", agent, why,
                   ("submitted", "pending-approval", "approved", "in-progress"),
                   result={"output": why, "completed_by": agent,
                           "completed_at": datetime.now(UTC)})

    def _check_agent(self, task_id: str, agent: str) -> None:
        if self.read(task_id).get("target_agent") != agent:
            raise MoveRefused(f"{agent} is not task {task_id}'s target agent")

    # -- operators --------------------------------------------------------------------------

    def approve(self, task_id: str, actor: str, note: str = "approved") -> None:
        self._move(task_id, "approved", actor, note, ("submitted", "pending-approval"))

    def cancel(self, task_id: str, actor: str, note: str = "cancelled") -> None:
        self._move(task_id, "cancelled", actor, note, None)

    def park(self, task_id: str, actor: str, note: str = "parked") -> None:
        current = self.read(task_id).get("status")
        self._move(task_id, "parked", actor, note, None, parked_from=current)

    def unpark(self, task_id: str, actor: str, note: str = "unparked") -> None:
        back = self.read(task_id).get("parked_from") or "submitted"
        self._move(task_id, back, actor, note, ("parked",))

    def requeue(self, task_id: str, actor: str) -> Path:
        """An operator brings a dead letter back into the live directory as submitted (one
        atomic write there, then the dead letter goes)."""
        source = self.path_of(task_id, "dead-letters")
        document = yaml.safe_load(source.read_text())
        document.update(status="submitted", retry_policy=None)
        document.setdefault("history", []).append(
            {"timestamp": datetime.now(UTC), "status": "submitted", "actor": actor,
             "note": "requeued"})
        target = self.root / source.name
        self._write(target, document)
        source.unlink()
        return target

    # -- the dispatcher ---------------------------------------------------------------------

    def dispatcher_tick(self, *, route_failures_until_dead: bool = False) -> list[str]:
        """Step 1-3 of the tick: unknown vocabulary -> routing-failed (or, standing for the
        retries running out, failed and moved to dead-letters/); else approved."""
        moved = []
        for document in self.tasks():
            if document.get("status") != "submitted":
                continue
            task_id = document["id"]
            mode = document.get("workflow_mode", "semi-auto")
            if document.get("task_type") not in TASK_TYPES or mode not in WORKFLOW_MODES:
                if route_failures_until_dead:
                    self._move(task_id, "failed", "dispatcher", "routing failed 3 times", None)
                    (self.root / "dead-letters").mkdir(exist_ok=True)
                    path = self.path_of(task_id)
                    shutil.move(path, self.root / "dead-letters" / path.name)
                else:
                    self._move(task_id, "routing-failed", "dispatcher", "unknown task type",
                               None, retry_policy={"retry_count": 1})
                moved.append(task_id)
                continue
            if not document.get("requires_approval"):
                self._move(task_id, "approved", "dispatcher", "auto-approved", None)
                moved.append(task_id)
        return moved


def override(root: Path, task_id: str, status: str, actor: str, note: str) -> None:
    """An operator's explicit override (any status, with a note), e.g. editing the file."""
    TaskQueueTool(root)._move(task_id, status, actor, note, None)
