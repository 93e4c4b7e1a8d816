"""How a status change changes a task file's document: one owner for the worker's writes and
the agents' CLI, which finishes its own file without PyYAML or the directory's index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import contract
from taskdir.reading import SOURCE_AGENT

TERMINAL = COMPLETED, FAILED, CANCELLED = ("completed", "failed", "cancelled")  # final statuses
FINAL_STATUS = {contract.SUCCESS: COMPLETED, contract.FAILED: FAILED}  # a stage result's -> file's


def utc_now() -> datetime:
    return datetime.now(UTC)


def history_entry(status: str, note: str, actor: str = SOURCE_AGENT,
                  moment: datetime | None = None) -> dict[str, Any]:
    """One `history` item; the timestamp is a YAML timestamp, as the tooling writes it."""
    return {"timestamp": moment or utc_now(), "status": status, "actor": actor, "note": note}


def move(document: dict[str, Any], status: str, note: str, *, output: str | None = None,
         by: str | None = None, unless_terminal: bool = False) -> bool:
    """DOCUMENT moved to STATUS with a history entry (and a result when OUTPUT or a terminal
    status is given); False, DOCUMENT untouched, when UNLESS_TERMINAL and it is final."""
    if unless_terminal and document.get("status") in TERMINAL:
        return False
    now = utc_now()
    document["status"] = status
    if status in TERMINAL or output is not None:
        document["result"] = {"output": output, "completed_by": by or SOURCE_AGENT,
                              "completed_at": now}
    history = document.get("history")
    document["history"] = [*(history if isinstance(history, list) else []),
                           history_entry(status, note, moment=now)]
    return True
