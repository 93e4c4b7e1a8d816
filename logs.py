"""Structured JSON log lines with worker_id and Temporal context on every line."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

WORKER_ID = str(uuid.uuid4())
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# The SDK's own lines print task tokens as bytes (`b'...'`), as a protobuf field, or (the
# core's "Activity not found on completion" warning) as `TaskToken(<base64>)`.
_TOKEN_TEXT = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\""
                         r"|task_token: \"(?:[^\"\\]|\\.)*\""
                         r"|TaskToken\([^)]*\)")


class TokenRedactor(logging.Filter):
    """Task tokens never reach a log line, whatever the level (they resume stages)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        has_bytes = any(isinstance(arg, (bytes, bytearray)) for arg in args)
        if has_bytes or record.name.startswith("temporal"):
            message = record.getMessage()
            if has_bytes or "token" in message:
                record.msg, record.args = _TOKEN_TEXT.sub("<redacted>", message), None
        return True


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

CORE_RETRY_LOGGER = "temporal_core-sdk_core::temporalio_client::retry"


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    """Route all logging to JSON lines on stdout (and LOG_FILE when given)."""
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file:
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                         0o600))  # created private; the handler then appends to it
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(TokenRedactor())
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "hvac", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # The SDK core says every retried call of an outage ("retried 5 times", "6 times", ...);
    # the sweeper says the outage once (temporal_unreachable) and its end once.
    logging.getLogger(CORE_RETRY_LOGGER).setLevel(max(logging.ERROR, root.level))
