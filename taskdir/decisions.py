"""Who may decide a parked build through its originating task file, and what it says."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from taskdir.index import DuplicateTaskId, LookupIncomplete, ReadBudget, TaskIndex, said_once
from taskdir.vocabulary import DECISIONS

log = logging.getLogger("taskdir")


@dataclass(frozen=True)
class Decision:
    """An originating task's status and who set it, why (the history entry of that move)."""

    status: str | None
    by: str | None = None
    reason: str | None = None

    def counts(self, approvers: frozenset[str]) -> bool:
        """Credible as an operator's decision: anyone when APPROVERS is empty (upstream),
        else only one of them (an agent editing the file is not)."""
        return not approvers or self.by in approvers


def read_decision(index: TaskIndex, approvers: frozenset[str], task_id: str, *,
                  credible_only: bool = True) -> Decision:
    """Status of TASK_ID with who set it and why; with APPROVERS, a deciding status set by
    anyone else reads as no status. Duplicates never decide. Both are reported. One read
    budget for it all: a heartbeat-bound caller is never held long (a lookup the budget
    cannot finish decides nothing this time, and is said once)."""
    budget = ReadBudget()
    try:
        return _read(index, approvers, task_id, credible_only, budget)
    except DuplicateTaskId as err:
        log.warning("duplicate_task_id", extra={"task_id": task_id, "error": str(err)[:500]})
    except LookupIncomplete as err:
        said_once("task_lookup_incomplete", task_id, str(err))
    return Decision(None)


def _read(index: TaskIndex, approvers: frozenset[str], task_id: str, credible_only: bool,
          budget: ReadBudget) -> Decision:
    """read_decision's reading, within BUDGET."""
    path = index.find(task_id, budget=budget)
    header = index.header(path, budget) if path is not None else None
    if header is None or path is None:
        return Decision(None)
    decision = Decision(header.status, header.by, header.note)
    if credible_only:  # deciding: no copy under any other name
        others = index.claimants_elsewhere(task_id, path, budget)
        if others:  # a copy planted under another name decides nothing either
            names = ", ".join(sorted(str(p.relative_to(index.root)) for p in [path, *others]))
            log.warning("duplicate_task_id", extra={
                "task_id": task_id, "error": f"{len(others) + 1} task files claim id "
                                             f"{task_id}: {names}"[:500]})
            return Decision(None)
    if not credible_only or decision.counts(approvers):
        return decision
    if decision.status in DECISIONS:
        log.warning("file_decision_ignored", extra={
            "task_id": task_id, "status": decision.status, "actor": decision.by,
            "reason": "not set by one of FILE_APPROVERS since the build parked"})
    return Decision(None)
