"""vault.py against a protocol fake of Vault's HTTP API (AppRole login + KV v2 read)."""

from __future__ import annotations

import builtins
import logging
from pathlib import Path

import pytest

from exceptions import CredentialError
from tests.vault_fake import VaultFake
from vault import VaultSettings, fetch_tls_material

PEMS = {"ca_cert_pem": "-----BEGIN CERTIFICATE-----\nCA\n", "client_cert_pem": "CERT",
        "client_key_pem": "-----BEGIN PRIVATE KEY-----\nKEY\n"}
SECRET_ID = "secret-id-4f1e9b"


def settings(url: str, tmp_path: Path, secret: str = SECRET_ID) -> VaultSettings:
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret + "\n")
    return VaultSettings(url, "worker-role", secret_file)


def test_success_returns_bytes(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with VaultFake("worker-role", SECRET_ID, {"temporal/worker": PEMS}) as vault:
        material = fetch_tls_material(settings(vault.url, tmp_path))
    assert material.ca_cert == PEMS["ca_cert_pem"].encode()
    assert material.client_key == PEMS["client_key_pem"].encode()
    assert vault.requests[0][1] == "/v1/auth/approle/login"
    assert "KEY" not in repr(material)
    assert SECRET_ID not in caplog.text


def test_wrong_secret_id(tmp_path):
    with (VaultFake("worker-role", SECRET_ID, {"temporal/worker": PEMS}) as vault,
          pytest.raises(CredentialError, match="refused") as caught):
        fetch_tls_material(settings(vault.url, tmp_path, secret="wrong-secret"))
    assert "wrong-secret" not in str(caught.value)


def test_missing_field(tmp_path):
    partial = {k: v for k, v in PEMS.items() if k != "client_key_pem"}
    with (VaultFake("worker-role", SECRET_ID, {"temporal/worker": partial}) as vault,
          pytest.raises(CredentialError, match=r"lacks field.*client_key_pem")):
        fetch_tls_material(settings(vault.url, tmp_path))


def test_missing_secret_path(tmp_path):
    with VaultFake("worker-role", SECRET_ID, {}) as vault, pytest.raises(
            CredentialError, match=r"Vault .*(refused the request|holds no key/value data)"):
        fetch_tls_material(settings(vault.url, tmp_path))


def test_empty_secret_id_file(tmp_path):
    with pytest.raises(CredentialError, match="is empty"):
        fetch_tls_material(settings("http://127.0.0.1:1", tmp_path, secret="  "))


def test_unreachable_vault(tmp_path):
    with pytest.raises(CredentialError, match="cannot reach Vault"):
        fetch_tls_material(settings("http://127.0.0.1:1", tmp_path), timeout=2)


def test_hvac_missing(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_hvac(name, *args, **kwargs):
        if name == "hvac" or name.startswith("hvac."):
            raise ImportError("No module named 'hvac'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hvac)
    with pytest.raises(CredentialError, match="pip install hvac"):
        fetch_tls_material(settings("http://127.0.0.1:1", tmp_path))
