"""The agents' hand-off over the frontend's HTTP API, with the standard library only: an agent's
completion costs a small Python process, not the SDK's import (issue 39). Same payload bytes,
TLS material, API key and exit codes as the gRPC path; the task token is never shown."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from connection.offers import OFFERED_AGAIN
from connection.rpc_exits import STATUS_NAMES, status_exit
from connection.settings import (
    AGENT_PREFIX,
    DEFAULT_ADDRESS,
    DEFAULT_NAMESPACE,
    DEFAULT_SOURCE,
    FROM_FILE,
    ClientSettings,
    StageLocation,
    agent_settings,
    http_setting,
    parse_bool,
    vault_missing,
)
from contract import JSON_ENCODING, PHASE_FAILED, SUCCESS, completion_json, progress_json
from exceptions import Exit

TRANSPORT_VAR = "AGENT_TRANSPORT"
TRANSPORTS = ("auto", "http", "grpc")
API = "/api/v1/namespaces/{namespace}/activities/{call}?noPayloadShorthand"
TIMEOUT = 15.0  # seconds for one call, as the gRPC path's RPC
MAX_REPLY = 1024 * 1024
# Variables only the SDK's reader (temporalio.envconfig) understands: with any of them set the
# settings are read by it (slower), and the call still goes over HTTP.
SDK_ONLY = ("TEMPORAL_TLS", "TEMPORAL_GRPC_META_", "TEMPORAL_PROFILE", "TEMPORAL_CODEC")


class HttpOff(Exception):
    """The HTTP API is not there (port closed, or not Temporal's API answering): nothing was
    done, so the gRPC path may try once."""


class HandOffError(Exception):
    """A one-line answer for the agent and its exit code (never the token)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Refused(HandOffError):
    """Temporal answered with an error status (STATUS: the gRPC code it carries)."""

    def __init__(self, status: int) -> None:
        name = STATUS_NAMES.get(status, str(status))
        super().__init__(f"Temporal refused the completion ({name})", status_exit(status,
                                                                               Exit.ERROR))
        self.status = status


def transport(env: Mapping[str, str]) -> str:
    """AGENT_TRANSPORT: auto (HTTP, gRPC when HTTP is off), http or grpc only."""
    value = env.get(TRANSPORT_VAR, "").strip().lower() or "auto"
    if value not in TRANSPORTS:
        raise HandOffError(f"{TRANSPORT_VAR} must be one of {', '.join(TRANSPORTS)}, got "
                           f"{value[:20]!r}", Exit.CONFIG)
    return value


def plain_settings(env: Mapping[str, str]) -> ClientSettings | None:
    """The settings of plain variables, read without the SDK; None when the environment uses
    what only the SDK's reader knows (a profile or config file, TLS files, gRPC metadata)."""
    if any(name.startswith(SDK_ONLY) for name in env) or config_file(env).exists():
        return None
    from connection.settings import _vault_settings  # the Vault layer's one reader

    connect: dict[str, Any] = {"target_host": env.get("TEMPORAL_ADDRESS") or DEFAULT_ADDRESS,
                               "namespace": env.get("TEMPORAL_NAMESPACE") or DEFAULT_NAMESPACE}
    if env.get("TEMPORAL_API_KEY"):
        connect["api_key"], connect["tls"] = env["TEMPORAL_API_KEY"], True  # as the SDK's
    sources = {f"{key}_from": f"from {variable}" if env.get(variable, "").strip()
               else DEFAULT_SOURCE for key, variable in (("address", "TEMPORAL_ADDRESS"),
                                                         ("namespace", "TEMPORAL_NAMESPACE"))}
    return ClientSettings(connect=connect, vault=_vault_settings(env),
                          vault_missing=vault_missing(env), http_setting=http_setting(env),
                          require_tls=parse_bool("TEMPORAL_REQUIRE_TLS",
                                                 env.get("TEMPORAL_REQUIRE_TLS")), **sources)


def config_file(env: Mapping[str, str]) -> Path:
    """The Temporal config file the SDK's reader would load (it may not exist)."""
    if env.get("TEMPORAL_CONFIG_FILE"):
        return Path(env["TEMPORAL_CONFIG_FILE"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "temporalio" / "temporal.toml"


def light_settings(env: Mapping[str, str]) -> ClientSettings:
    from connection.settings import load_client_settings

    return plain_settings(env) or load_client_settings(env)


class Target(NamedTuple):
    """Where and how to post: the HTTP API's address and what goes with every request."""

    address: str
    address_from: str
    namespace: str
    context: ssl.SSLContext | None = None
    server_name: str | None = None
    headers: dict[str, str] = {}  # never changed in place; with the API key: secret
    vault_missing: tuple[str, ...] = ()  # some Vault variables set, these not: Vault is off

    def __repr__(self) -> str:
        return f"Target({self.address!r}, {self.namespace!r}, <headers>)"


def target(env: Mapping[str, str], place: StageLocation | None) -> Target:
    """The HTTP target of the agents' settings (the task file fills what the shell leaves
    unset, as on the gRPC path); TLS material as the gRPC path would use it."""
    settings = agent_settings(env, place, light_settings, light_tls=True)
    headers = {"Content-Type": "application/json", "temporal-namespace": settings.namespace}
    api_key = settings.connect.get("api_key")
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    for key, value in dict(settings.connect.get("rpc_metadata") or {}).items():
        headers.setdefault(str(key), str(value))
    context, name = tls_context(settings)
    return Target(settings.http_address, http_source(env, settings), settings.namespace,
                  context, name, headers, settings.vault_missing)


def http_source(env: Mapping[str, str], settings: ClientSettings) -> str:
    """Where the HTTP address came from, said in messages (as the gRPC address's)."""
    if not settings.http_setting:
        return ("derived from the default gRPC address" if not settings.names_address else
                f"derived from the gRPC address {settings.address_from}")
    if settings.address_from == FROM_FILE:
        return FROM_FILE
    own = f"{AGENT_PREFIX}TEMPORAL_HTTP_ADDRESS"
    return f"from {own if own in env else 'TEMPORAL_HTTP_ADDRESS'}"


def tls_context(settings: ClientSettings) -> tuple[ssl.SSLContext | None, str | None]:
    """The ssl context of the same TLS policy as the gRPC path (Vault > static > off, refused
    when TEMPORAL_REQUIRE_TLS wants TLS and there is none), and the server name to ask for."""
    if settings.vault is not None:
        from vault import fetch_tls_material

        material = fetch_tls_material(settings.vault)
        return context_of(material.ca_cert, material.client_cert, material.client_key), None
    tls = settings.connect.get("tls")
    if tls is True:
        return ssl.create_default_context(), None
    if tls:  # a TLSConfig from the SDK's reader or the task file
        return (context_of(tls.server_root_ca_cert, tls.client_cert, tls.client_private_key),
                tls.domain)
    if settings.require_tls:
        from connection.tls import tls_config

        tls_config(settings)  # raises the policy's one refusal
    return None, None


def context_of(ca: bytes | None, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    """An ssl context trusting CA (else the system's roots) and presenting CERT and KEY; the
    key never touches the disk (a memory file, closed at once)."""
    context = ssl.create_default_context(cadata=ca.decode("ascii") if ca else None)
    if cert and key:
        files = [os.memfd_create("tls", os.MFD_CLOEXEC) for _ in range(2)]
        try:
            for fd, pem in zip(files, (cert, key), strict=True):
                os.write(fd, pem)
            context.load_cert_chain(*(f"/proc/self/fd/{fd}" for fd in files))
        finally:
            for fd in files:
                os.close(fd)
    return context


class _Connection(http.client.HTTPConnection):
    """HTTP whose ASCII host goes to the resolver as bytes: a text host makes Python load the
    IDNA codec and unicodedata first, a few milliseconds of a short-lived CLI."""

    def connect(self) -> None:
        host = self.host.encode("ascii") if self.host.isascii() else self.host
        self.sock = socket.create_connection((host, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TlsConnection(_Connection):
    """HTTPS with CONTEXT, asking for SERVER_NAME (the TLS settings' domain) or the host."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str | None,
                 timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._context, self._server_name = context, server_name

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock,
                                              server_hostname=self._server_name or self.host)


def post(where: Target, call: str, body: dict[str, Any],
         meanwhile: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """POST BODY to the activity CALL (MEANWHILE run while Temporal answers); the reply's
    JSON. HttpOff when nothing Temporal answered, Refused for the server's error,
    HandOffError(5) when the call may be lost."""
    host, _, port = where.address.rpartition(":")
    host = host.strip("[]")
    connection = (_TlsConnection(host, int(port), where.context, where.server_name, TIMEOUT)
                  if where.context else _Connection(host, int(port), timeout=TIMEOUT))
    path = API.format(namespace=where.namespace, call=call)
    try:
        opened(connection, where)
        connection.request("POST", path, json.dumps(body).encode("utf-8"), where.headers)
        meanwhile()
        reply = connection.getresponse()
        status, data = reply.status, reply.read(MAX_REPLY)
    except (OSError, http.client.HTTPException):  # sent, maybe done: the agent retries
        raise HandOffError(f"cannot reach Temporal's HTTP API at {where.address} "
                           f"({where.address_from})", Exit.UNREACHABLE) from None
    finally:
        connection.close()
    return answer(where, status, data)


def opened(connection: http.client.HTTPConnection, where: Target) -> None:
    """Connect (and shake hands); HttpOff when nothing was sent: the port is closed, or TLS
    failed (a plain HTTP port, a certificate refused): gRPC, with its own TLS, may try."""
    try:
        connection.connect()
    except ConnectionRefusedError:
        raise HttpOff(f"nothing answers HTTP at {where.address}") from None
    except ssl.SSLError as err:
        raise HttpOff(f"TLS with the HTTP API at {where.address} failed "
                      f"({err.reason or type(err).__name__})") from None
    except OSError as err:  # no such host, no route, a timeout
        raise HttpOff(f"cannot connect to HTTP at {where.address} "
                      f"({err.strerror or type(err).__name__})") from None


def answer(where: Target, status: int, data: bytes) -> dict[str, Any]:
    """The JSON of a 200; Refused for Temporal's error body; HttpOff for anything else (not
    Temporal's API, or no such route: a server without the HTTP API, or an older one)."""
    try:
        reply = json.loads(data or b"{}")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise HttpOff(f"what answers at {where.address} is not Temporal's HTTP API")
    if status == 200:
        return reply
    code = reply.get("code")
    if not isinstance(code, int) or (status == 404 and not reply.get("details")
                                     and reply.get("message") == "Not Found"):
        raise HttpOff(f"{where.address} does not serve Temporal's HTTP API (HTTP {status})")
    raise Refused(code)


def payloads(data: bytes) -> dict[str, Any]:
    """One json/plain payload, as the gRPC path sends it (canonical form: the exact bytes)."""
    encode = base64.b64encode
    return {"payloads": [{"metadata": {"encoding": encode(JSON_ENCODING).decode("ascii")},
                          "data": encode(data).decode("ascii")}]}


class Call(NamedTuple):
    """One agent's call: finish the stage (STATUS success/failed) or heartbeat (progress)."""

    verb: str  # "complete" or "heartbeat"
    status: str
    message: str
    maybe_old: bool = False  # an older offer's token maybe: ask the server first
    old_offer: Callable[[], bool] = lambda: False  # the stage moved on (gRPC describe)
    withdrawn: Callable[[], bool] = lambda: False  # the task file says: cancelled
    meanwhile: Callable[[], None] = lambda: None  # work of a completion while Temporal answers


STOP_LINE = "stop: this stage was cancelled (its task file says so too); stop working on it"
NOT_FOUND_LINE = ("no such activity: already completed, timed out, cancelled, or from another "
                  "namespace")


def hand_off(where: Target, call: Call, token: bytes) -> None:
    """The call over HTTP, with the gRPC path's answers: an old offer's token says so, a
    finished activity exits 4, a cancelled stage's heartbeat exits 8."""
    common = {"namespace": where.namespace, "identity": identity(),
              "taskToken": base64.b64encode(token).decode("ascii")}
    try:
        if call.verb == "heartbeat":
            beat(where, call, common)
            return
        if call.maybe_old and call.old_offer():
            raise HandOffError(OFFERED_AGAIN, Exit.NOT_FOUND)
        post(where, "complete" if call.status == SUCCESS else "fail",
             {**common, **finish_body(call)}, call.meanwhile)
    except Refused as err:
        raise not_found(call) if err.code == Exit.NOT_FOUND else refused(err, where) from None


def finish_body(call: Call) -> dict[str, Any]:
    """The result (a JSON payload) or the non-retryable PhaseFailedError, as on gRPC."""
    if call.status == SUCCESS:
        return {"result": payloads(completion_json(call.message))}
    return {"failure": {"message": call.message or "Phase failed", "source": "PythonSDK",
                        "applicationFailureInfo": {"type": PHASE_FAILED,
                                                   "nonRetryable": True}}}


def beat(where: Target, call: Call, common: dict[str, Any]) -> None:
    """The heartbeat with its progress; a cancelled stage is acknowledged (cancelled in the
    history) and told to stop, or, offered again, to use the current task file."""
    details = payloads(progress_json(call.message, datetime.now(UTC).isoformat()))
    reply = post(where, "heartbeat", {**common, "details": details})
    if not reply.get("cancelRequested"):
        if call.withdrawn():  # the run withdrew the stage; the server may not say so yet
            raise HandOffError(STOP_LINE, Exit.STOP)
        return
    again = call.old_offer()
    post(where, "cancel", {**common, "details": details})
    raise HandOffError(OFFERED_AGAIN if again else STOP_LINE,
                       Exit.NOT_FOUND if again else Exit.STOP)


def not_found(call: Call) -> HandOffError:
    """Exit 4's line, or what the server's "not found" means for this stage."""
    if call.old_offer():
        return HandOffError(OFFERED_AGAIN, Exit.NOT_FOUND)
    if call.verb == "heartbeat" and call.withdrawn():
        return HandOffError(STOP_LINE, Exit.STOP)
    return HandOffError(NOT_FOUND_LINE, Exit.NOT_FOUND)


def refused(err: Refused, where: Target) -> HandOffError:
    if err.code == Exit.INVALID:
        return HandOffError("Temporal rejected the task token as malformed", Exit.INVALID)
    if err.code == Exit.UNREACHABLE:
        return HandOffError(f"cannot reach Temporal at {where.address} ({where.address_from})",
                            Exit.UNREACHABLE)
    return err


def identity() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"
