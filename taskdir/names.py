"""How task files are named: a stage's task id in its run, the file name it gets, and the id
prefix a name carries. Light on purpose: the agents' CLI finds a token's file by these."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

_STAGE_IDS = uuid.UUID("6f1f3c1e-8d0b-4c55-9a53-0b1d2c3e4f50")
_NAME = re.compile(r"^\d{8}-\d{6}-(.{1,8})\.yml$")  # group: the id's first 8 chars


def stage_task_id(run_id: str, stage: str) -> str:
    """The task id of STAGE ('implement_build', 'execute_build_phase/3') in run RUN_ID: one
    per stage of one run, so a retry rewrites the same task file."""
    return str(uuid.uuid5(_STAGE_IDS, f"{run_id}/{stage}"))


def file_name(task_id: str, created: datetime) -> str:
    """The tooling's name for a task file: its creation time (UTC) and its id's prefix."""
    return f"{created.astimezone(UTC):%Y%m%d-%H%M%S}-{task_id[:8]}.yml"


def id_prefix(name: str) -> str | None:
    """The id prefix a task file's name carries (None: not named as the tooling names files);
    the common full-length name is sliced, not matched (a busy directory is rescanned often)."""
    if len(name) == 28 and name[8] == name[15] == "-" and name[:8].isdecimal() \
            and name[9:15].isdecimal() and "\n" not in name:
        return name[16:24]
    match = _NAME.match(name)
    return match.group(1) if match else None
