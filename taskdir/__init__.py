"""The agents' task directory, shared with the platform's task-queue tooling."""

from taskdir.directory import Decision, DuplicateTaskId, TaskDirectory
from taskdir.documents import SOURCE_AGENT, TaskSpec, dump, file_name, iso, load, utc_now
from taskdir.vocabulary import TaskStyle

__all__ = ["SOURCE_AGENT", "Decision", "DuplicateTaskId", "TaskDirectory", "TaskSpec",
           "TaskStyle", "dump", "file_name", "iso", "load", "utc_now"]
