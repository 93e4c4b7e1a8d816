"""The one contract with agents and operators: every name and shape that crosses our boundary.

It imports nothing of the project, so the agents' CLI, the sweeper, buildctl, the workflows and
the test bed all read the same facts from the bottom of the house.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

# Workflow types on the build task queue, and the activity of every native agent stage.
PIPELINE, PLAN = "BuildPipelineWorkflow", "BuildPlanWorkflow"
DISPATCH_STAGE = "dispatch_stage"
# Visibility queries for our pipelines and plans on one task queue (format task_queue=...).
BUILDS_QUERY = f"TaskQueue = '{{task_queue}}' AND WorkflowType IN ('{PIPELINE}', '{PLAN}')"
RUNNING_BUILDS_QUERY = BUILDS_QUERY + " AND ExecutionStatus = 'Running'"

# How an agent finishes a stage: a result {"status": "success", "output": ...} as JSON, or a
# non-retryable failure of this type.
SUCCESS, FAILED = "success", "failed"
PHASE_FAILED = "PhaseFailedError"


class TriageFormatError(ValueError):
    """The triage file cannot be understood; retrying will not help. Its class name is the
    failure type on the wire: the pipeline parks the build on it."""


# The other failure types our runs act on: the triage file's failure (parks the build), a
# triage file not written yet (retried), and blocks the operator refused (ends the build).
TRIAGE_FORMAT_ERROR, TRIAGE_MISSING = TriageFormatError.__name__, "TriageMissing"
BUILD_REJECTED = "BuildRejected"
JSON_ENCODING = b"json/plain"

# Where the agents' task-queue tooling keeps task files, unless the variable says otherwise.
TASK_DIR_VARIABLE, DEFAULT_TASK_DIR = "TASK_QUEUE_DIR", "~/.claude/task-queue"

# Where a task file carries its stage's token: payload.task_token, standard base64.
TOKEN_FIELD = "task_token"
LOCATION_FIELD = "temporal"  # payload.temporal: where the stage lives (address, namespace, TLS)


def completion(output: str) -> dict[str, str]:
    """A successful stage's result (what BuildPhaseResult decodes)."""
    return {"status": SUCCESS, "output": output}


def completion_json(output: str) -> bytes:
    """A successful stage's result as the SDK's JSON converter writes it (compact, UTF-8)."""
    return json.dumps(completion(output), separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def progress_json(message: str, at: str) -> bytes:
    """A heartbeat's details: the agent's progress message and when it was sent."""
    return json.dumps({"progress": message, "at": at}, ensure_ascii=False).encode("utf-8")


def encode_token(token: bytes) -> str:
    """The text form of a task token, as task files carry it."""
    return base64.b64encode(token).decode("ascii")


def decode_token(text: str) -> bytes:
    """Strict base64 -> token bytes; ValueError (never showing the text) when it is not."""
    try:
        token = base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("task token is not valid base64") from None
    if not token:
        raise ValueError("task token is empty")
    return token


def token_text(document: Any) -> str | None:
    """payload.task_token of a task file's mapping (None: it has none)."""
    payload = document.get("payload") if isinstance(document, dict) else None
    token = payload.get(TOKEN_FIELD) if isinstance(payload, dict) else None
    return token if isinstance(token, str) else None


class Memo:
    """Memo keys a running build shows (read by the sweeper and buildctl)."""

    DISPATCH = "dispatch_task_id"  # the agent task the run waits on
    AWAIT = "awaiting_task_id"  # the originating task a parked pipeline waits on
    QUEUE = "dispatch_queue"  # the host queue of that agent task (absent: the run's own)


class Handler:
    """Names of the queries, signals and updates our workflows answer."""

    PROGRESS = "progress"
    REDISPATCH = "redispatch"
    DEAD_LETTERED = "stage_dead_lettered"
    ATTENTION = "attention"
    APPROVE, REJECT = "approve", "reject"  # signals
    APPROVE_BLOCKS, REJECT_BLOCKS = "approve_blocks", "reject_blocks"  # updates


class Marker:
    """The version marker (`workflow.patched` id) every run 1.0 starts records first;
    docs/upgrading.md ("Versions and markers") says how a later change adds its own."""

    RELEASE = "release-1.0"


# The first marker of every run a 0.x release started (0.7 to 0.9: native-run-0.7; 0.10 and
# later: lean-start-0.10): such a run is recognised and named, never continued.
EARLIER_MARKERS = ("native-run-0.7", "lean-start-0.10")
