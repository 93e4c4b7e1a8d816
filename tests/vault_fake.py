"""PROTOCOL FAKE of HashiCorp Vault (no Vault/OpenBao binary can be installed here).

Speaks Vault's real HTTP API for the two calls we make: AppRole login
(POST /v1/auth/approle/login) and a KV v2 read (GET /v1/<mount>/data/<path>).
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class VaultFake:
    """A loopback server with one AppRole and a KV v2 store."""

    def __init__(self, role_id: str, secret_id: str, kv: dict[str, dict[str, Any]]) -> None:
        self.role_id, self.secret_id, self.kv = role_id, secret_id, kv
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("POST", self.path, body))
                if self.path != "/v1/auth/approle/login":
                    return self._reply(404, {"errors": []})
                if body.get("role_id") != fake.role_id or body.get("secret_id") != fake.secret_id:
                    return self._reply(400, {"errors": ["invalid role or secret ID"]})
                token = "hvs." + secrets.token_hex(12)
                fake.tokens.add(token)
                self._reply(200, {"auth": {"client_token": token, "lease_duration": 3600,
                                           "renewable": True, "policies": ["worker"]}})

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, {}))
                if self.headers.get("X-Vault-Token") not in fake.tokens:
                    return self._reply(403, {"errors": ["permission denied"]})
                prefix = "/v1/secret/data/"
                path = self.path.split("?")[0]
                if not path.startswith(prefix) or path[len(prefix):] not in fake.kv:
                    return self._reply(404, {"errors": []})
                self._reply(200, {"data": {"data": fake.kv[path[len(prefix):]], "metadata": {
                    "created_time": "2026-01-01T00:00:00Z", "deletion_time": "",
                    "destroyed": False, "version": 1}}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> VaultFake:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
