"""Fetch the worker's mTLS material from Vault by AppRole, keeping it in memory only."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from exceptions import CredentialError


class VaultSettings(NamedTuple):
    """Where and how to fetch mTLS material by AppRole."""

    addr: str
    role_id: str
    secret_id_file: Path


KV_MOUNT = "secret"
KV_PATH = "temporal/worker"
FIELDS = ("ca_cert_pem", "client_cert_pem", "client_key_pem")


class TLSMaterial(NamedTuple):
    """PEM bytes for a TLSConfig; repr hides them."""

    ca_cert: bytes
    client_cert: bytes
    client_key: bytes

    def __repr__(self) -> str:
        return "TLSMaterial(<redacted>)"


def _read_secret_id(settings: VaultSettings) -> str:
    try:
        secret_id = settings.secret_id_file.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise CredentialError(
            f"cannot read VAULT_SECRET_ID_FILE {settings.secret_id_file}: {err.strerror}"
        ) from None
    if not secret_id:
        raise CredentialError(f"VAULT_SECRET_ID_FILE {settings.secret_id_file} is empty")
    return secret_id


def _as_bytes(name: str, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise CredentialError(f"Vault field {name} at {KV_MOUNT}/{KV_PATH} is not text")


def fetch_tls_material(settings: VaultSettings, timeout: float = 10.0) -> TLSMaterial:
    """Log in with AppRole, read KV v2 secret/temporal/worker, return the three PEMs."""
    try:
        import hvac
        import hvac.exceptions
    except ImportError:
        raise CredentialError(
            "Vault variables are set but the 'hvac' package is missing: pip install hvac"
        ) from None
    secret_id = _read_secret_id(settings)
    try:
        client = hvac.Client(url=settings.addr, timeout=timeout)
        client.auth.approle.login(role_id=settings.role_id, secret_id=secret_id)
        del secret_id
        response = client.secrets.kv.v2.read_secret_version(
            path=KV_PATH, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.VaultError as err:
        kind = type(err).__name__
        raise CredentialError(f"Vault at {settings.addr} refused the request ({kind})") from None
    except Exception as err:  # network errors come from requests/urllib3
        kind = type(err).__name__
        raise CredentialError(f"cannot reach Vault at {settings.addr} ({kind})") from None
    data = (response or {}).get("data", {}).get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict):
        raise CredentialError(f"Vault secret {KV_MOUNT}/{KV_PATH} holds no key/value data")
    missing = [name for name in FIELDS if not data.get(name)]
    if missing:
        raise CredentialError(
            f"Vault secret {KV_MOUNT}/{KV_PATH} lacks field(s): {', '.join(missing)}"
        )
    return TLSMaterial(*(_as_bytes(name, data[name]) for name in FIELDS))
