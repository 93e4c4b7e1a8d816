"""Pydantic models for every workflow, activity, signal and query payload (upstream field names)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from contract import DISPATCH_STAGE
from stages import Stage, stage_named

BUILD_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{7,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _agent_name(value: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value:
        raise ValueError("must be a plain name: letters, digits, '.', '_' or '-' (max 64)")
    return value


def _task_id(value: str) -> str:
    if not _TASK_ID.fullmatch(value):
        raise ValueError("must be 8-128 letters, digits, '_' or '-' (a task-queue id)")
    return value


def _one_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be one line without control characters")
    return value


def _safe_path(value: str) -> str:
    _one_line(value)
    if not value.strip():
        raise ValueError("must not be empty")
    if any(part == ".." for part in value.split("/")):
        raise ValueError("must not contain '..' components")
    return value


def _text(value: str) -> str:
    if _CONTROL.search(value.replace("\n", "").replace("\t", "")):
        raise ValueError("must not contain control characters")
    return value


def describe_errors(err: ValidationError) -> str:
    """Every invalid field of ERR in one line: `field: why; other: why`."""
    parts = []
    for error in err.errors():
        where = ".".join(str(part) for part in error["loc"]) or "input"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)[:1500]


def plan_path_problem(plan_path: str) -> str | None:
    """Why a pipeline's plan path cannot be used by every agent host (None: it can)."""
    if not plan_path.startswith("/"):
        return f"plan_path: must be an absolute path (agents read it elsewhere), got {plan_path!r}"
    return None


AgentName = Annotated[str, AfterValidator(_agent_name)]
TaskId = Annotated[str, AfterValidator(_task_id)]
OneLine = Annotated[str, Field(max_length=500), AfterValidator(_one_line)]
SafePath = Annotated[str, Field(max_length=4096), AfterValidator(_safe_path)]
Text = Annotated[str, Field(max_length=20000), AfterValidator(_text)]
BuildName = Annotated[str, Field(pattern=BUILD_NAME_PATTERN, max_length=100)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Input(BaseModel):
    """A workflow input: unknown keys are kept aside (logged once) and ignored, as upstream
    did; the dispatcher's `workflow` task passes every payload key it has."""

    model_config = ConfigDict(extra="allow")

    def ignored_keys(self) -> list[str]:
        return sorted(self.model_extra or {})


class BuildPipelineInput(_Input):
    """Start arguments of BuildPipelineWorkflow."""

    build_name: BuildName
    plan_path: SafePath
    task_id: TaskId
    target_agent: AgentName


class BuildPipelineResult(_Model):
    """What a finished pipeline returns."""

    status: str = "complete"
    workflow_id: str
    summary_path: str


class TriageOutput(_Model):
    """Parsed triage-output.yml: one text per finding."""

    blocks: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    info: list[str] = Field(default_factory=list)
    path: str | None = None  # the file read (absent in older recorded results)


class PhaseSpec(BaseModel):
    """One phase of a build plan (unknown keys ignored)."""

    model_config = ConfigDict(extra="ignore")

    number: int = Field(ge=0, le=100000)
    agent_type: AgentName
    description: Text
    context_refs: list[SafePath] = Field(default_factory=list)


class BuildPlanInput(_Input):
    """Start arguments of BuildPlanWorkflow."""

    plan_name: OneLine
    phases: list[PhaseSpec] = Field(min_length=1, max_length=1000)

    @field_validator("phases")
    @classmethod
    def _numbers_distinct(cls, phases: list[PhaseSpec]) -> list[PhaseSpec]:
        """A phase's number is its task id's key: two phases with one number share a file."""
        seen: set[int] = set()
        for phase in phases:
            if phase.number in seen:
                raise ValueError(f"phase number {phase.number} appears more than once: "
                                 f"give each phase its own number")
            seen.add(phase.number)
        return phases


class BuildPhaseInput(_Model):
    """Argument of execute_build_phase."""

    plan_name: OneLine
    phase_number: int
    agent_type: AgentName
    description: Text
    context_refs: list[SafePath] = Field(default_factory=list)
    workflow_id: str


class BuildPhaseResult(BaseModel):
    """What an agent reports through complete_activity.py."""

    status: str
    output: str = ""


class BuildPlanResult(_Model):
    """What a finished plan returns."""

    status: str = "complete"
    phases_run: int


class BlockDecision(_Model):
    """Operator decision on a blocked pipeline (signal/update payload)."""

    by: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]
    reason: Annotated[str, Field(max_length=2000), AfterValidator(_one_line)] = ""


Outcome = Literal["success", "partial", "rejected", "timed_out", "failed", "cancelled"]


def finished_outcome(blocks_hit: int) -> Outcome:
    """How a pipeline that reached its close ended: blocks approved past make it partial."""
    return "partial" if blocks_hit else "success"


class WorkflowSummary(_Model):
    """Input of summarize_workflow: the record written to the summary directory."""

    workflow_id: str
    build_name: str
    started: datetime
    completed: datetime
    phases_completed: list[str]
    blocks_hit: int
    flags_applied: int
    outcome: Outcome
    plan_path: str
    build_report_path: str | None = None
    decided_by: str | None = None
    reason: str | None = None
    # The findings' own words, and why a build that did not close ended (absent from the
    # calls of runs that predate them, which must still decode).
    blocks: list[str] | None = None
    flags: list[str] | None = None
    triage_file: str | None = None
    ending: str | None = None


class PhaseOutcome(_Model):
    """One phase of a plan as its summary records it."""

    number: int
    agent: str
    outcome: Literal["completed", "failed", "cancelled", "not run"]
    output: str | None = None


class PlanSummary(_Model):
    """Input of write_plan_summary: a plan's record, written beside the pipelines'."""

    workflow_id: str
    plan_name: str
    started: datetime
    completed: datetime
    outcome: Literal["success", "failed", "cancelled"]
    phases: list[PhaseOutcome]
    ending: str | None = None


class BlockNotice(_Model):
    """Input of notify_findings: one notification per backend for one set of blocks."""

    build_name: str
    task_id: str
    blocks: list[str]  # every block, in its own words
    flags: int = 0
    triage_file: str | None = None
    mark_task: bool = True  # mark the originating task (the first try only)
    skip: list[str] = Field(default_factory=list)  # backends that already delivered


class NoticeResult(_Model):
    """What notify_findings delivered: backends that took it, and why the others did not."""

    delivered: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


class BlockCheck(_Model):
    """What the originating task file says right now (None: no readable, credible status)."""

    status: str | None
    by: str | None = None
    reason: str | None = None


def _stage_kind(value: str) -> str:
    """Our stage kind; the upstream name an older worker scheduled (in flight) is read as it."""
    return stage_named(value).kind


StageKind = Annotated[str, AfterValidator(_stage_kind)]


class TaskSettlement(_Model):
    """Input of settle_task: move a task file we own (or the originating task) along."""

    task_id: str
    status: Literal["in-progress", "completed", "failed", "cancelled"]
    note: Annotated[str, Field(max_length=2000)]
    output: str | None = None
    by: str | None = None


class StageTask(_Model):
    """Input of dispatch_stage: one agent stage whose identity the workflow decided."""

    task_id: str
    kind: StageKind
    target_agent: str
    build: str  # build or plan name
    fields: dict[str, Any]  # the stage's payload fields of the upstream contract
    originating_task_id: str | None = None
    context_refs: list[str] = Field(default_factory=list)
    # Lean runs: the finished stage's file, settled once this stage's file is written (same
    # host), instead of by a settle_task activity of its own.
    settle: TaskSettlement | None = None
    note: str | None = None  # why the file is written again (its history entry), if it is


class QueueProbe(_Model):
    """Input of host_queue_state: the host task queue a stage is handed to."""

    task_queue: str
    activity_type: str = DISPATCH_STAGE  # the stage's activity, pending on that queue


class QueueState(_Model):
    """Result of host_queue_state: a worker polls the queue; the stage was taken from it."""

    polled: bool
    started: bool


class TaskCancellation(_Model):
    """Input of mark_task_cancelled: which task file to withdraw and why."""

    task_id: str
    note: Annotated[str, Field(max_length=2000)]


class StageTimings(BaseModel):
    """Stage limits and retry knobs (seconds); the worker's config and each run share them."""

    timeout_prefab: float = 7200
    timeout_implement: float = 14400
    timeout_audit: float = 14400
    timeout_fixes: float = 7200
    timeout_close: float = 7200
    timeout_phase: float = 86400
    triage_retry_initial: float = 120
    triage_retry_max: float = 900
    triage_max_attempts: int = Field(default=5, ge=1, le=100)
    block_wait_timeout: float = 7 * 86400
    block_check_interval: float = 30
    # Agent liveness (opt-in): an agent stage whose agent sends no heartbeat for this long is
    # re-offered (the same file, a fresh token) up to agent_reoffers times, or failed.
    agent_heartbeat_timeout: float | None = None
    agent_silence: Literal["reoffer", "fail"] = "reoffer"
    agent_reoffers: int = Field(default=2, ge=0, le=20)

    def limit(self, stage: Stage) -> float:
        """STAGE's time limit (seconds): the field the stage table names."""
        return float(getattr(self, stage.timeout))


class StageSettings(StageTimings, _Model):
    """Per-run stage timings and switches, recorded once by a local activity (replay-safe)."""

    index_builds: bool = False
    # Agent -> the task queue of the host its task directory is on (unmapped: our own queue).
    agent_queues: dict[str, str] = Field(default_factory=dict)


class Progress(BaseModel):
    """Answer of the `progress` query: where the pipeline is and what it waits for."""

    stage: str
    stages_done: list[str] = Field(default_factory=list)
    waiting_on: str | None = None
    task_ids: dict[str, str] = Field(default_factory=dict)
    blocks: int = 0
    flags: int = 0
    deadline: datetime | None = None
    decision: str | None = None
    alert: str | None = None  # e.g. the stage's task file was dead-lettered
    queue: str | None = None  # the host task queue the current stage is handed to
    queue_unpolled: bool = False  # no worker polled that queue lately (the host is down)
    # The operator's decision, in the findings' own words (bounded: see triage.SHOWN_*).
    findings: list[str] = Field(default_factory=list)  # the blocks, one line each
    flag_findings: list[str] = Field(default_factory=list)  # the flags, one line each
    triage_path: str | None = None  # the triage file read (or refused)
    triage_refused: str | None = None  # "triage file unreadable: <path>: <reason>"
    decided_by: str | None = None
    decision_reason: str | None = None
    # An ended build: how it ended and where its summary is.
    outcome: str | None = None  # success, partial, rejected, timed_out, failed, cancelled
    summary_path: str | None = None
