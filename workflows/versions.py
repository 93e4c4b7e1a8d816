"""Which release's workflow code a run follows: every `workflow.patched` question asked here."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contract import Marker

# What the start marker stands for: every marker added before it. A marker added after it is
# asked on its own, since a run started by 0.10 took the old path where that marker is asked.
IMPLIED_BY_START = frozenset({Marker.NATIVE_RUN, Marker.LEAN_HANDOFF, Marker.ABSOLUTE_PLAN_PATH,
                              Marker.HOST_LIVENESS, Marker.TRIAGE_REFUSAL_PARKS})


def follows(marker: str) -> bool:
    """Whether this run takes the path MARKER guards.

    A run started by 0.10 or later records one marker, `lean-start-0.10`, and it stands for
    every earlier one (one command on the first workflow task instead of one per release);
    a run started before carries, or lacks, each marker of its own. The legacy door asks
    first in `run`, so that marker is a new run's first command.
    """
    if marker in IMPLIED_BY_START and workflow.patched(Marker.LEAN_START):
        return True
    return workflow.patched(marker)
