"""Which code a run follows: 1.0's, v0.5's (through the legacy door), or none (0.x's runs)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contract import EARLIER_MARKERS, Marker


class StartedByEarlierRelease(RuntimeError):
    """A run a 0.x release started: its workflow task fails, naming it, until a 0.x worker
    finishes it (docs: drain 0.x runs before the upgrade). Not a workflow failure."""


def started_by_v05() -> bool:
    """Whether v0.5 started this run (no marker of ours in its history). Asked first in
    `run`: a new run records `Marker.RELEASE` as its first command. A run that carries a
    0.x release's marker instead is named and not continued."""
    if workflow.patched(Marker.RELEASE):
        return False
    for marker in EARLIER_MARKERS:
        if workflow.patched(marker):
            raise StartedByEarlierRelease(
                f"run {workflow.info().workflow_id} was started by a 0.x release (marker "
                f"{marker}); a 1.0 worker does not continue it: finish it on a 0.x worker, "
                f"or terminate it (see docs/upgrading.md)")
    return True
