"""Structured JSON log lines with worker_id and Temporal context on every line."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

WORKER_ID = str(uuid.uuid4())
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, event, context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "worker_id": WORKER_ID,
        }
        activity_info = getattr(record, "temporal_activity", None)
        if isinstance(activity_info, dict):
            entry["workflow_id"] = activity_info.get("workflow_id")
            entry["activity"] = activity_info.get("activity_type")
        workflow_info = getattr(record, "temporal_workflow", None)
        if isinstance(workflow_info, dict):
            entry["workflow_id"] = workflow_info.get("workflow_id")
            entry["workflow_type"] = workflow_info.get("workflow_type")
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("temporal_") and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=_safe_str)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # e.g. a dead weakref proxy handed to a third-party log call
        return f"<unprintable {type(value).__name__}>"


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    """Route all logging to JSON lines on stdout (and LOG_FILE when given)."""
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "hvac", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
