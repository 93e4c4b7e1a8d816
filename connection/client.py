"""Open a Temporal client with the project's converter and TLS policy (Vault > profile > off)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from connection.settings import ClientSettings
from exceptions import CredentialError, TemporalUnreachable

log = logging.getLogger("temporal_client")


def tls_config(settings: ClientSettings) -> TLSConfig | bool | None:
    """Decide the TLS argument for Client.connect or refuse per TEMPORAL_REQUIRE_TLS."""
    if settings.vault is not None:
        from vault import fetch_tls_material

        material = fetch_tls_material(settings.vault)
        return TLSConfig(
            server_root_ca_cert=material.ca_cert,
            client_cert=material.client_cert,
            client_private_key=material.client_key,
        )
    if settings.has_static_tls:
        return settings.connect.get("tls")
    if settings.require_tls:
        gap = (f"; Vault is off because {', '.join(settings.vault_missing)} "
               f"{'is' if len(settings.vault_missing) == 1 else 'are'} unset"
               if settings.vault_missing else "")
        raise CredentialError(
            "TEMPORAL_REQUIRE_TLS is set but no TLS credentials are configured "
            f"(set the VAULT_* variables or TEMPORAL_TLS_*){gap}"
        )
    log.info("tls_disabled")
    return None


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
