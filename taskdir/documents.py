"""Task-file documents: what a stage asks for, and reading and writing the YAML safely."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from taskdir.moves import history_entry, utc_now
from taskdir.reading import MAX_TASK_FILE_BYTES, SOURCE_AGENT, load, offers

__all__ = ["MAX_TASK_FILE_BYTES", "SOURCE_AGENT", "UNREADABLE", "TaskSpec", "dump",
           "history_entry", "iso", "load", "offers", "utc_now"]
# What reading a task file can raise (the safe loader's refusals are ValueErrors): the one
# definition of "this file cannot be read".
UNREADABLE = (OSError, ValueError, yaml.YAMLError)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Plain YAML a person can edit: a value used twice is written twice, never `&id001`."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

@dataclass(frozen=True)
class TaskSpec:
    """What one agent stage asks for; the token is added at dispatch time.

    `task_type` is the upstream stage kind (build_prefab, ...); the vocabulary decides what
    the file says. The optional fields feed the task-queue vocabulary's payload.
    """

    task_id: str
    target_agent: str
    task_type: str
    summary: str
    payload: dict[str, Any] = field(default_factory=dict)
    originating_task_id: str | None = None
    context_refs: tuple[str, ...] = ()
    request: str | None = None  # the audit request.md the dispatcher hands the security agent


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dump(document: dict[str, Any]) -> bytes:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=1000).encode("utf-8")
