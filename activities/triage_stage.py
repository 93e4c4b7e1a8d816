"""process_triage_output: read the security agent's triage file into TriageOutput."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audit_folder import requested_folder
from activities.deps import Deps
from contract import TRIAGE_FORMAT_ERROR, TRIAGE_MISSING, TriageFormatError
from findings import MAX_TRIAGE_BYTES, parse_triage
from models import TriageOutput
from safeio.untrusted_yaml import InputRefused, read_regular


class TriageStage:
    """Stage 4: missing file is retryable, a malformed one is not."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="process_triage_output")
    async def process_triage_output(self, build_name: str) -> TriageOutput:
        path = (await asyncio.to_thread(requested_folder, self.deps.config, build_name)).triage
        try:
            raw = await asyncio.to_thread(read_regular, path, MAX_TRIAGE_BYTES)
        except FileNotFoundError:
            _log_expected_wait(path)
            raise ApplicationError(f"triage file not written yet: {path}",
                                   type=TRIAGE_MISSING) from None
        except InputRefused as err:
            raise ApplicationError(f"{path}: {err}", str(path), type=TRIAGE_FORMAT_ERROR,
                                   non_retryable=True) from None
        except OSError as err:
            reason = "is a symlink" if err.errno == errno.ELOOP else err.strerror
            raise ApplicationError(f"cannot read triage file {path}: {reason}", str(path),
                                   type=TRIAGE_FORMAT_ERROR, non_retryable=True) from None
        try:
            result = parse_triage(raw)
        except TriageFormatError as err:
            raise ApplicationError(f"{path}: {err}", str(path), type=TRIAGE_FORMAT_ERROR,
                                   non_retryable=True) from None
        activity.logger.info("triage_read", extra={
            "blocks": len(result.blocks), "flags": len(result.flags), "info": len(result.info)})
        return result.model_copy(update={"path": str(path)})


def _log_expected_wait(path: Path) -> None:
    """A triage file not written yet is expected (the agent may still be writing): INFO, with
    the attempt and when the next look is."""
    info = activity.info()
    policy = info.retry_policy
    limit = policy.maximum_attempts if policy and policy.maximum_attempts else None
    wait = None
    if policy and policy.initial_interval:
        wait = policy.initial_interval.total_seconds() * (
            policy.backoff_coefficient ** (info.attempt - 1))
        if policy.maximum_interval:
            wait = min(wait, policy.maximum_interval.total_seconds())
    last = limit is not None and info.attempt >= limit
    activity.logger.info("triage_waiting", extra={
        "path": str(path), "attempt": info.attempt, "max_attempts": limit,
        "next_in_s": None if last else wait})
