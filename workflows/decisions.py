"""A parked pipeline's block decision: when one may be taken, and what was decided."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models import BlockCheck, BlockDecision
    from taskdir.vocabulary import DECISIONS


class DecisionGate:
    """Open only while the pipeline is parked (from 0.11: from the moment its blocks are
    notified); the first decision wins, the rest are ignored (signals) or refused (updates).
    One gate per set of blocks: blocks found later get a gate of their own."""

    def __init__(self) -> None:
        self.parked = False
        self.decision: tuple[str, BlockDecision] | None = None

    @property
    def verdict(self) -> str | None:
        return self.decision[0] if self.decision else None

    @property
    def decided(self) -> BlockDecision | None:
        return self.decision[1] if self.decision else None

    def decide(self, verdict: str, decision: BlockDecision) -> bool:
        if not self.parked or self.decision is not None:
            workflow.logger.info("decision_ignored", extra={"verdict": verdict})
            return False
        self.decision = (verdict, decision)
        return True

    def refuse_unless_due(self, decision: BlockDecision) -> None:
        """An update's validator: a decision that is not due is refused, not recorded."""
        if not self.parked:
            raise ValueError("this pipeline is not waiting for a block decision")
        if self.decision is not None:
            raise ValueError(f"already decided: {self.decision[0]} by {self.decision[1].by}")

    def take_file_status(self, check: BlockCheck) -> None:
        """The originating task file's credible status, if it decides and nothing did yet."""
        verdict = DECISIONS.get(check.status or "")
        if self.decision is None and verdict:
            self.decision = (verdict, BlockDecision(by=check.by or "task-file",
                                                    reason=check.reason or ""))
