"""Temporal connection settings shared by the worker and both CLIs (kept import-light)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exceptions import ConfigError
from vault import VaultSettings

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class ClientSettings:
    """Everything needed to open a Temporal client connection."""

    connect: Mapping[str, Any]
    vault: VaultSettings | None
    require_tls: bool
    vault_missing: tuple[str, ...] = ()  # some Vault variables set, these not: Vault is off

    @property
    def address(self) -> str:
        return str(self.connect.get("target_host") or DEFAULT_ADDRESS)

    @property
    def namespace(self) -> str:
        return str(self.connect.get("namespace") or DEFAULT_NAMESPACE)

    @property
    def has_static_tls(self) -> bool:
        tls = self.connect.get("tls")
        return tls is not None and tls is not False

    def describe(self) -> dict[str, Any]:
        """Non-secret summary for the config_loaded log line."""
        return {
            "temporal_address": self.address,
            "temporal_namespace": self.namespace,
            "tls": "vault" if self.vault else ("static" if self.has_static_tls else "off"),
            "api_key_set": bool(self.connect.get("api_key")),
            "require_tls": self.require_tls,
        }


def parse_bool(name: str, value: str | None) -> bool:
    """Read a yes/no environment value strictly."""
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/true/yes or 0/false/no, got {value!r}")


VAULT_VARS = ("VAULT_ADDR", "VAULT_ROLE_ID", "VAULT_SECRET_ID_FILE")


def vault_missing(env: Mapping[str, str]) -> tuple[str, ...]:
    """The Vault variables left unset when some (not all) are set; () otherwise."""
    missing = tuple(name for name in VAULT_VARS if not env.get(name, "").strip())
    return missing if 0 < len(missing) < len(VAULT_VARS) else ()


def _vault_settings(env: Mapping[str, str]) -> VaultSettings | None:
    """Vault only when all three variables are set (as v0.5: `VAULT_ADDR` alone is common)."""
    values = {name: env.get(name, "").strip() for name in VAULT_VARS}
    if not all(values.values()):
        return None
    secret_file = Path(values["VAULT_SECRET_ID_FILE"]).expanduser()
    if not secret_file.is_file():
        raise ConfigError(f"VAULT_SECRET_ID_FILE does not exist or is not a file: {secret_file}")
    return VaultSettings(values["VAULT_ADDR"], values["VAULT_ROLE_ID"], secret_file)


AGENT_PREFIX = "AGENT_"  # AGENT_TEMPORAL_*: the agents' CLI's own identity


def agent_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment the agents' CLI connects with. When any AGENT_TEMPORAL_* variable is
    set (address, namespace, API key, TLS files, profile, config file), those replace every
    TEMPORAL_* and VAULT_* variable: agents then hold credentials of their own, which can
    complete activities and need not be the operators' or the worker's."""
    own = {name[len(AGENT_PREFIX):]: value for name, value in env.items()
           if name.startswith(AGENT_PREFIX + "TEMPORAL_")}
    if not own:
        return dict(env)
    kept = {name: value for name, value in env.items()
            if not name.startswith(("TEMPORAL_", "VAULT_"))}
    return {**kept, **own}


def load_client_settings(env: Mapping[str, str] | None = None) -> ClientSettings:
    """Read TEMPORAL_* variables and profiles (temporalio.envconfig) plus the Vault layer."""
    from temporalio.envconfig import ClientConfigProfile

    env = os.environ if env is None else env
    try:
        profile = ClientConfigProfile.load(
            profile=env.get("TEMPORAL_PROFILE") or None, override_env_vars=dict(env)
        )
        connect = dict(profile.to_client_connect_config())
    except Exception as err:  # envconfig raises plain errors for bad files/values
        raise ConfigError(f"invalid Temporal client configuration: {err}") from None
    connect.setdefault("target_host", DEFAULT_ADDRESS)
    connect.setdefault("namespace", DEFAULT_NAMESPACE)
    if not connect.get("target_host"):
        connect["target_host"] = DEFAULT_ADDRESS
    if not connect.get("namespace"):
        connect["namespace"] = DEFAULT_NAMESPACE
    return ClientSettings(
        connect=connect,
        vault=_vault_settings(env),
        vault_missing=vault_missing(env),
        require_tls=parse_bool("TEMPORAL_REQUIRE_TLS", env.get("TEMPORAL_REQUIRE_TLS")),
    )
