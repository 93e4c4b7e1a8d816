"""Open a Temporal client with the pydantic converter and TLS policy (Vault > profile > off)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.runtime import Runtime

from connection.converter import DATA_CONVERTER
from connection.settings import ClientSettings
from connection.tls import tls_config
from exceptions import TemporalUnreachable


async def connect(
    settings: ClientSettings,
    *,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Connect with the pydantic converter (every payload is a model); raises
    CredentialError or TemporalUnreachable. The agents' CLI needs no client (one RPC)."""
    options: dict[str, Any] = dict(settings.connect)
    options["tls"] = tls_config(settings) or False
    try:
        return await Client.connect(
            **options,
            data_converter=DATA_CONVERTER,
            interceptors=list(interceptors),
            runtime=runtime,
        )
    except RuntimeError as err:  # the SDK's bridge reports a failed connection this way
        first = (str(err).splitlines() or [""])[0][:300]
        raise TemporalUnreachable(f"cannot reach Temporal at {settings.address}: "
                                  f"{first}") from None
