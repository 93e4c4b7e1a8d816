"""Where a stage lives, as its task file says it, and who wins over the file (#35.11)."""

from __future__ import annotations

import pytest
from temporalio.service import TLSConfig

from connection.settings import (
    StageLocation,
    agent_settings,
    load_client_settings,
    stage_location,
)
from exceptions import ConfigError

NO_CONFIG = {"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}
PLACE = StageLocation(address="temporal.internal:7444", namespace="builds", tls=True,
                      server_name="temporal.internal")


def test_the_worker_writes_where_it_is_and_no_secret():
    settings = load_client_settings({**NO_CONFIG, "TEMPORAL_ADDRESS": "10.0.0.5:7444",
                                     "TEMPORAL_NAMESPACE": "builds",
                                     "TEMPORAL_API_KEY": "sekrit",
                                     "TEMPORAL_TLS": "true",
                                     "TEMPORAL_TLS_SERVER_NAME": "temporal.internal"})
    assert settings.location() == {"address": "10.0.0.5:7444", "namespace": "builds",
                                   "tls": True, "server_name": "temporal.internal"}
    assert stage_location(settings.location()) == StageLocation(
        "10.0.0.5:7444", "builds", True, "temporal.internal")


def test_an_empty_shell_takes_everything_from_the_file():
    settings = agent_settings(NO_CONFIG, PLACE)
    assert (settings.address, settings.namespace) == ("temporal.internal:7444", "builds")
    assert (settings.address_from, settings.namespace_from) == ("from the task file",) * 2
    tls = settings.connect["tls"]
    assert isinstance(tls, TLSConfig) and tls.domain == "temporal.internal"
    assert tls.client_cert is None  # no material from the file, ever


def test_the_shells_settings_win_field_by_field():
    settings = agent_settings({**NO_CONFIG, "TEMPORAL_NAMESPACE": "mine"}, PLACE)
    assert (settings.address, settings.address_from) == ("temporal.internal:7444",
                                                         "from the task file")
    assert (settings.namespace, settings.namespace_from) == ("mine", "from TEMPORAL_NAMESPACE")
    settings = agent_settings({**NO_CONFIG, "TEMPORAL_ADDRESS": "h:1",
                               "AGENT_TEMPORAL_NAMESPACE": "agents"}, PLACE)
    # AGENT_TEMPORAL_* replace the shell's TEMPORAL_*; the file fills what they leave unset
    assert (settings.address, settings.address_from) == ("temporal.internal:7444",
                                                         "from the task file")
    assert settings.namespace_from == "from AGENT_TEMPORAL_NAMESPACE"


def test_tls_off_in_the_file_never_turns_the_shells_tls_off():
    settings = agent_settings({**NO_CONFIG, "TEMPORAL_TLS": "true"},
                              StageLocation(address="h:1", tls=False))
    assert settings.has_static_tls


@pytest.mark.parametrize("secret", [{"TEMPORAL_API_KEY": "k"},
                                    {"TEMPORAL_GRPC_META_AUTHORIZATION": "Bearer k"}])
def test_credentials_go_only_where_the_shell_says(secret):
    with pytest.raises(ConfigError, match="set TEMPORAL_ADDRESS"):
        agent_settings({**NO_CONFIG, **secret}, PLACE)
    settings = agent_settings({**NO_CONFIG, **secret, "TEMPORAL_ADDRESS": "h:1"}, PLACE)
    assert settings.address == "h:1"


@pytest.mark.parametrize("raw", [[], "h:1", {"address": "h"}, {"address": "a b:1"},
                                 {"address": 7233}, {"namespace": "../x"},
                                 {"tls": 1}, {"server_name": "x" * 300},
                                 {"address": "h:1\n"}])
def test_a_place_that_is_not_one_is_refused(raw):
    with pytest.raises(ValueError, match=r"payload\.temporal"):
        stage_location(raw)


def test_the_http_path_turns_the_files_tls_on_as_the_sdk_would_without_the_sdk():
    """The file's `tls: true` on the HTTP path: the same server name and no client material
    as the SDK's TLSConfig on the gRPC path, verified against the system's CA roots."""
    import ssl

    from connection import http_completion as http
    from connection.settings import FileTLS

    sdk = agent_settings(NO_CONFIG, PLACE).connect["tls"]
    light = agent_settings(NO_CONFIG, PLACE, light_tls=True).connect["tls"]
    assert isinstance(light, FileTLS)
    for field in FileTLS._fields:
        assert getattr(light, field) == getattr(sdk, field), field
    where = http.target(NO_CONFIG, PLACE)
    assert where.server_name == "temporal.internal" and where.context is not None
    assert where.context.verify_mode == ssl.CERT_REQUIRED and where.context.check_hostname
