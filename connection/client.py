"""Open a Temporal client with the project's converter and TLS policy (Vault > profile > off)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime

from connection.settings import ClientSettings
from connection.tls import tls_config
from exceptions import TemporalUnreachable


async def connect(
    settings: ClientSettings,
    *,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
    data_converter: DataConverter | None = None,
) -> Client:
    """Connect using the settings; raises CredentialError or TemporalUnreachable.

    The pydantic converter is the default; the agents' CLI passes the plain one to stay light.
    """
    if data_converter is None:
        from temporalio.contrib.pydantic import pydantic_data_converter

        data_converter = pydantic_data_converter
    options: dict[str, Any] = dict(settings.connect)
    options["tls"] = tls_config(settings) or False
    try:
        return await Client.connect(
            **options,
            data_converter=data_converter,
            interceptors=list(interceptors),
            runtime=runtime,
        )
    except RuntimeError as err:  # the SDK's bridge reports a failed connection this way
        first = (str(err).splitlines() or [""])[0][:300]
        raise TemporalUnreachable(f"cannot reach Temporal at {settings.address}: "
                                  f"{first}") from None
