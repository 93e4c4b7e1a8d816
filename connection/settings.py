"""Temporal connection settings shared by the worker and both CLIs (kept import-light)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from contract import LOCATION_FIELD
from exceptions import ConfigError
from vault import VaultSettings

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_SOURCE = "the default"  # a setting nobody set
HTTP_PORT_OFFSET = 10  # the HTTP API's port, when not set: the gRPC port + 10
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class ClientSettings:
    """Everything needed to open a Temporal client connection. A plain frozen class, not a
    dataclass: the agents' CLI imports it, and `dataclasses` costs it ~5 ms of imports."""

    __slots__ = ("address_from", "connect", "http_setting", "namespace_from", "require_tls",
                 "vault", "vault_missing")
    connect: Mapping[str, Any]
    vault: VaultSettings | None
    require_tls: bool
    vault_missing: tuple[str, ...]  # some Vault variables set, these not: Vault is off
    address_from: str  # where the address came from, said in messages
    namespace_from: str
    http_setting: str | None  # TEMPORAL_HTTP_ADDRESS (or the task file's), if set

    def __init__(self, connect: Mapping[str, Any], vault: VaultSettings | None,
                 require_tls: bool, vault_missing: tuple[str, ...] = (),
                 address_from: str = DEFAULT_SOURCE, namespace_from: str = DEFAULT_SOURCE,
                 http_setting: str | None = None) -> None:
        for name, value in (("connect", connect), ("vault", vault),
                            ("require_tls", require_tls), ("vault_missing", vault_missing),
                            ("address_from", address_from), ("namespace_from", namespace_from),
                            ("http_setting", http_setting)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ClientSettings is frozen: cannot set {name}")

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return type(other) is ClientSettings and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # its connect mapping is not hashable

    def __repr__(self) -> str:
        shown = {**self._values(), "connect": sorted(self.connect)}  # names only: a key is secret
        return f"ClientSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def replace(self, **changes: Any) -> ClientSettings:
        return ClientSettings(**{**self._values(), **changes})

    @property
    def address(self) -> str:
        return str(self.connect.get("target_host") or DEFAULT_ADDRESS)

    @property
    def namespace(self) -> str:
        return str(self.connect.get("namespace") or DEFAULT_NAMESPACE)

    @property
    def http_address(self) -> str:
        """The frontend's HTTP API: as set, else the gRPC host with the gRPC port + 10 (the
        server's own pair, 7233 and 7243, and the pair scripts/run.sh starts)."""
        if self.http_setting:
            return self.http_setting
        host, _, port = self.address.rpartition(":")
        return f"{host}:{int(port) + HTTP_PORT_OFFSET}" if port.isdigit() else self.address

    @property
    def has_static_tls(self) -> bool:
        tls = self.connect.get("tls")
        return tls is not None and tls is not False

    @property
    def names_address(self) -> bool:
        """Whether the address was set (a variable or a profile), not defaulted."""
        return self.address_from != DEFAULT_SOURCE

    @property
    def names_namespace(self) -> bool:
        return self.namespace_from != DEFAULT_SOURCE

    @property
    def server_name(self) -> str | None:
        """The TLS server name a static TLS configuration asks for, if any."""
        return getattr(self.connect.get("tls"), "domain", None) or None

    def location(self) -> dict[str, Any]:
        """Where a stage of this connection lives, as its task file says it (no secrets: TLS
        material and API keys never leave the process that holds them)."""
        place: dict[str, Any] = {"address": self.address, "namespace": self.namespace,
                                 "tls": self.vault is not None or self.has_static_tls}
        if self.server_name:
            place["server_name"] = self.server_name
        if self.http_setting:
            place["http_address"] = self.http_setting
        return place

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
# The connection's rows of the README's configuration table (variable, default, meaning):
# read here and by temporalio.envconfig, not by config.py's models (the agents' CLI stays light).
ENV_ROWS = (
    ("TEMPORAL_ADDRESS", DEFAULT_ADDRESS, "frontend address (also TEMPORAL_API_KEY, "
     "TEMPORAL_TLS_*, TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE: standard `temporalio.envconfig`)"),
    ("TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE, "namespace"),
    ("TEMPORAL_HTTP_ADDRESS", "gRPC host, gRPC port + 10", "the frontend's HTTP API (host:port; "
     "the server's `frontend.httpPort`, the dev server's `--http-port`): written into each task "
     "file's `payload.temporal.http_address` when set, where the agents' CLI posts its "
     "completions and heartbeats"),
    ("AGENT_TRANSPORT", "auto", "agents' CLI: `auto` (HTTP, gRPC once when HTTP is off), "
     "`http` or `grpc`"),
    ("TEMPORAL_REQUIRE_TLS", "unset", "1/true/yes: refuse to start without TLS"),
    (", ".join(VAULT_VARS), "unset", "all three: mTLS material from Vault; only some: no Vault, "
     "a `vault_partial` warning naming the missing ones"),
    ("AGENT_TEMPORAL_*", "unset", "the agents' CLI's own connection settings (replace "
     "TEMPORAL_* and Vault for it)"),
)


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
    sources = {f"{key}_from": _source(env, variable, connect.get(key))
               for key, variable in (("address", "TEMPORAL_ADDRESS"),
                                     ("namespace", "TEMPORAL_NAMESPACE"))}
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
        http_setting=http_setting(env),
        **sources,
    )


def http_setting(env: Mapping[str, str]) -> str | None:
    """TEMPORAL_HTTP_ADDRESS (host:port of the frontend's HTTP API), checked; None: unset."""
    value = env.get("TEMPORAL_HTTP_ADDRESS", "").strip()
    if value and not _ADDRESS.fullmatch(value):
        raise ConfigError(f"TEMPORAL_HTTP_ADDRESS must be host:port, got {value[:80]!r}")
    return value or None


def _source(env: Mapping[str, str], variable: str, value: object) -> str:
    """Where a connection setting came from: its variable, a profile, or nowhere (default)."""
    if env.get(variable, "").strip():
        return f"from {variable}"
    return "from the Temporal config profile" if value else DEFAULT_SOURCE


FROM_FILE = "from the task file"
_ADDRESS = re.compile(r"[A-Za-z0-9._\-\[\]:]{1,250}:[0-9]{1,5}")
_NAME = re.compile(r"[A-Za-z0-9._\-]{1,253}")


class StageLocation(NamedTuple):
    """What a task file says about where its stage lives (never a credential)."""

    address: str | None = None
    namespace: str | None = None
    tls: bool = False
    server_name: str | None = None
    http_address: str | None = None  # the frontend's HTTP API, when the worker's is set


def stage_location(raw: object) -> StageLocation | None:
    """payload.temporal of a task file, checked field by field (any agent can write the file);
    ValueError names the field that is wrong."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"payload.{LOCATION_FIELD} is not a mapping")
    checks = {"address": _ADDRESS, "namespace": _NAME, "server_name": _NAME,
              "http_address": _ADDRESS}
    values: dict[str, Any] = {}
    for key, pattern in checks.items():
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise ValueError(f"payload.{LOCATION_FIELD}.{key} is not a valid {key}")
        values[key] = value
    if not isinstance(raw.get("tls", False), bool):
        raise ValueError(f"payload.{LOCATION_FIELD}.tls is not true or false")
    return StageLocation(tls=bool(raw.get("tls")), **values)


def agent_settings(env: Mapping[str, str], place: StageLocation | None,
                   load: Callable[[Mapping[str, str]], ClientSettings] | None = None,
                   light_tls: bool = False) -> ClientSettings:
    """The agents' CLI's connection: its own AGENT_TEMPORAL_* settings, else the shell's
    TEMPORAL_* (and profile), each setting they leave unset filled from the task file. LOAD
    reads the variables (the SDK's reader unless the caller has a lighter one); LIGHT_TLS:
    the file's TLS as a FileTLS (the HTTP path), not the SDK's TLSConfig."""
    own = any(name.startswith(AGENT_PREFIX + "TEMPORAL_") for name in env)
    settings = (load or load_client_settings)(agent_env(env))
    if own:
        settings = settings.replace(**{
            key: getattr(settings, key).replace("from TEMPORAL_", f"from {AGENT_PREFIX}TEMPORAL_")
            for key in ("address_from", "namespace_from")})
    return settings if place is None else at_location(settings, place, light_tls)


class FileTLS(NamedTuple):
    """TLS a task file turns on, as the SDK's TLSConfig(domain=...) says it: the system's CA
    roots, no client certificate. The HTTP path reads these four; it never imports the SDK."""

    domain: str | None
    server_root_ca_cert: bytes | None = None
    client_cert: bytes | None = None
    client_private_key: bytes | None = None


def at_location(settings: ClientSettings, place: StageLocation,
                light_tls: bool = False) -> ClientSettings:
    """SETTINGS with the address, namespace and TLS on/off the task file names, where the
    environment names none. Credentials from the environment go only to an address named
    there too (the file is anyone's to write): refused, never sent elsewhere."""
    connect = dict(settings.connect)
    changes: dict[str, Any] = {}
    if place.address and not settings.names_address:
        if connect.get("api_key") or connect.get("rpc_metadata"):
            raise ConfigError(
                f"the task file says its stage is at {place.address}, but the API key (or "
                f"gRPC metadata) from the environment is sent only to an address set there "
                f"too: set TEMPORAL_ADDRESS (or AGENT_TEMPORAL_ADDRESS)")
        connect["target_host"], changes["address_from"] = place.address, FROM_FILE
        if settings.http_setting is None:
            changes["http_setting"] = place.http_address  # None: derived from the address
        if place.tls and settings.vault is None and not settings.has_static_tls:
            connect["tls"] = FileTLS(place.server_name) if light_tls else _sdk_tls(place)
    if place.namespace and not settings.names_namespace:
        connect["namespace"], changes["namespace_from"] = place.namespace, FROM_FILE
    return settings.replace(connect=connect, **changes)


def _sdk_tls(place: StageLocation) -> Any:
    """The SDK's TLSConfig for the file's TLS: the system's CA roots, its server name."""
    from temporalio.service import TLSConfig

    return TLSConfig(domain=place.server_name)
