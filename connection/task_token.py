"""What a Temporal task token says about its activity (read, never trusted for authority)."""

from __future__ import annotations

from typing import NamedTuple

# Field numbers of the server's TaskToken message (temporal.server.api.token.v1).
_WORKFLOW_ID, _RUN_ID, _SCHEDULED_EVENT_ID, _ATTEMPT = 2, 3, 4, 5
_ACTIVITY_ID, _ACTIVITY_TYPE = 6, 8


class TokenFacts(NamedTuple):
    """The run and the activity a task token completes."""

    workflow_id: str
    run_id: str
    scheduled_event_id: int
    activity_id: str
    activity_type: str
    attempt: int = 0  # the attempt the token was issued for (0: the token does not say)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("task token is malformed")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def read_task_token(token: bytes) -> TokenFacts:
    """Parse TOKEN's protobuf fields; ValueError when it is not a task token."""
    texts: dict[int, str] = {}
    numbers: dict[int, int] = {}
    at = 0
    while at < len(token):
        key, at = _varint(token, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            numbers[field], at = _varint(token, at)
        elif wire == 2:
            size, at = _varint(token, at)
            if at + size > len(token):
                raise ValueError("task token is malformed")
            texts[field] = token[at:at + size].decode("utf-8", "replace")
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError("task token is malformed")
    if not texts.get(_WORKFLOW_ID) or not texts.get(_RUN_ID):
        raise ValueError("task token names no workflow run")
    return TokenFacts(texts[_WORKFLOW_ID], texts[_RUN_ID], numbers.get(_SCHEDULED_EVENT_ID, 0),
                      texts.get(_ACTIVITY_ID, ""), texts.get(_ACTIVITY_TYPE, ""),
                      numbers.get(_ATTEMPT, 0))
