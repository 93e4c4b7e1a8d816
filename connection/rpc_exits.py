"""Which exit code a refused Temporal RPC means, for every CLI (one table)."""

from __future__ import annotations

from temporalio.service import RPCError, RPCStatusCode

from exceptions import Exit

RPC_EXITS: dict[RPCStatusCode, Exit] = {
    RPCStatusCode.NOT_FOUND: Exit.NOT_FOUND,
    RPCStatusCode.INVALID_ARGUMENT: Exit.INVALID,
    RPCStatusCode.ALREADY_EXISTS: Exit.REFUSED,
    RPCStatusCode.UNAVAILABLE: Exit.UNREACHABLE,
    RPCStatusCode.DEADLINE_EXCEEDED: Exit.UNREACHABLE,
}


def rpc_exit(err: RPCError, otherwise: Exit) -> Exit:
    """ERR's exit code; OTHERWISE for a status the table does not name."""
    return RPC_EXITS.get(err.status, otherwise)
