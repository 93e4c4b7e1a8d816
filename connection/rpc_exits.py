"""Which exit code a refused Temporal call means, for every CLI and either transport (one
table, keyed by the gRPC status code: the HTTP API's error body carries the same number)."""

from __future__ import annotations

from typing import Any

from exceptions import Exit

# gRPC status codes (google.rpc.Code), as RPCStatusCode and the HTTP API's "code" number them.
STATUS_NAMES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
                5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED",
                8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED",
                11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
                15: "DATA_LOSS", 16: "UNAUTHENTICATED"}
RPC_EXITS: dict[int, Exit] = {
    5: Exit.NOT_FOUND,
    3: Exit.INVALID,
    6: Exit.REFUSED,
    14: Exit.UNREACHABLE,
    4: Exit.UNREACHABLE,
}


def status_exit(code: int, otherwise: Exit) -> Exit:
    """The exit code of gRPC status CODE; OTHERWISE for a status the table does not name."""
    return RPC_EXITS.get(code, otherwise)


def rpc_exit(err: Any, otherwise: Exit) -> Exit:
    """An RPCError's exit code; OTHERWISE for a status the table does not name."""
    return status_exit(int(err.status), otherwise)
