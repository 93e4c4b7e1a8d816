"""The agents' task directory, shared with the platform's task-queue tooling. Its names load
on first use: the agents' CLI imports `taskdir.reading` without the directory's index."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"Decision": "decisions", "TaskDirectory": "directory", "DuplicateTaskId": "index",
          "TaskStyle": "vocabulary", "file_name": "names", **{name: "documents" for name in (
              "SOURCE_AGENT", "UNREADABLE", "TaskSpec", "dump", "iso", "load", "utc_now")}}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'taskdir' has no attribute {name!r}")
    return getattr(importlib.import_module(f"taskdir.{_HOMES[name]}"), name)
