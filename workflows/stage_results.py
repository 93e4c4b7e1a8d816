"""What an agent stage's ending means to the workflow: its result, or one clear failure."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout  # not the builtin

with workflow.unsafe.imports_passed_through():
    from contract import PHASE_FAILED
    from models import BuildPhaseResult


def agent_retry(attempts: int = 1) -> RetryPolicy:
    """An agent's failure is final; only a timed-out attempt is tried again (ATTEMPTS)."""
    return RetryPolicy(maximum_attempts=attempts, non_retryable_error_types=[PHASE_FAILED])


def stage_result(raw: RawValue, label: str) -> BuildPhaseResult:
    """An agent's completion as BuildPhaseResult. It is data: one we cannot decode (an unknown
    encoding, a wrong shape) fails the stage with a clear message, never the workflow task."""
    try:
        return workflow.payload_converter().from_payload(raw.payload, BuildPhaseResult)
    except Exception:
        encoding = raw.payload.metadata.get("encoding", b"").decode("utf-8", "replace")[:40]
        raise ApplicationError(
            f"{label} failed: the agent's completion could not be read (encoding "
            f"{encoding or 'none'!r}); complete the stage with complete_activity.py",
            type=PHASE_FAILED, non_retryable=True) from None


def stage_failure(label: str, error: BaseException,
                  silence: str | None = None) -> ApplicationError:
    """A non-retryable workflow failure naming the stage and the agent's message (or, for a
    heartbeat timeout, the agent's silence)."""
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    message = getattr(cause, "message", None) or str(cause)
    if silence and is_silence(error):
        message = silence
    return ApplicationError(f"{label} failed: {message}", type=PHASE_FAILED,
                            non_retryable=True)


def is_silence(error: BaseException) -> bool:
    """The attempt ended because its agent sent no heartbeat in time."""
    cause = error.cause if isinstance(error, ActivityError) else error
    return isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.HEARTBEAT


def failed_result(label: str, output: str) -> ApplicationError:
    """The agent reported failure: the stage (and the run) fails with its message."""
    return ApplicationError(f"{label} failed: {output}", type=PHASE_FAILED, non_retryable=True)
