"""Deterministic task ids: one per stage of one run, so retries rewrite the same task file."""

import uuid

_NAMESPACE = uuid.UUID("6f1f3c1e-8d0b-4c55-9a53-0b1d2c3e4f50")


def stage_task_id(run_id: str, stage: str) -> str:
    """The task id for STAGE (e.g. 'implement_build' or 'execute_build_phase/3') of RUN_ID."""
    return str(uuid.uuid5(_NAMESPACE, f"{run_id}/{stage}"))
