"""The TLS policy for every connection (Vault > profile > off), on the service layer only."""

from __future__ import annotations

import logging

from temporalio.service import TLSConfig

from connection.settings import ClientSettings
from exceptions import CredentialError

log = logging.getLogger("temporal_client")


def tls_config(settings: ClientSettings) -> TLSConfig | bool | None:
    """The TLS argument for a connection, or CredentialError per TEMPORAL_REQUIRE_TLS."""
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
