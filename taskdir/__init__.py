"""The agents' task directory, shared with the platform's task-queue tooling."""

from taskdir.decisions import Decision
from taskdir.directory import TaskDirectory
from taskdir.documents import (
    SOURCE_AGENT,
    UNREADABLE,
    TaskSpec,
    dump,
    file_name,
    iso,
    load,
    utc_now,
)
from taskdir.index import DuplicateTaskId
from taskdir.vocabulary import TaskStyle

__all__ = ["SOURCE_AGENT", "UNREADABLE", "Decision", "DuplicateTaskId", "TaskDirectory", "TaskSpec",
           "TaskStyle", "dump", "file_name", "iso", "load", "utc_now"]
