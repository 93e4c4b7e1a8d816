"""Each notification backend against a local receiver that checks the exact request."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from notify.base import NotifierGroup
from notify.matrix import MatrixNotifier
from notify.ntfy import NtfyNotifier
from notify.script import ScriptNotifier
from tests.http_receiver import HttpReceiver


async def test_ntfy_request_shape():
    with HttpReceiver() as receiver:
        await NtfyNotifier(f"{receiver.url}/builds").send("[ACTION] demo: block 1/1 needs "
                                                          "review", "docker socket")
    request = receiver.requests[0]
    assert (request.method, request.path) == ("POST", "/builds")
    assert request.headers["Title"] == "[ACTION] demo: block 1/1 needs review"
    assert request.headers["Priority"] == "high" and request.headers["Tags"] == "warning"
    assert request.body == b"docker socket"


async def test_ntfy_retries_then_succeeds():
    with HttpReceiver([503, 502]) as receiver:
        await NtfyNotifier(receiver.url).send("t", "m")
    assert len(receiver.requests) == 3


async def test_ntfy_gives_up_on_client_error():
    with HttpReceiver([400]) as receiver, pytest.raises(RuntimeError, match="HTTP 400"):
        await NtfyNotifier(receiver.url).send("t", "m")
    assert len(receiver.requests) == 1


async def test_matrix_request_shape_and_same_txn_on_retry(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("syt_secret_token\n")
    with HttpReceiver([500]) as receiver:
        await MatrixNotifier(receiver.url, "!room:example.org", token_file).send("title", "msg")
    first, second = receiver.requests
    assert first.method == "PUT"
    assert first.path.startswith(
        "/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/")
    assert first.path == second.path  # same transaction id: the homeserver deduplicates
    assert first.headers["Authorization"] == "Bearer syt_secret_token"
    assert json.loads(first.body) == {"msgtype": "m.text", "body": "title\nmsg"}


async def test_script_gets_room_and_message_without_pm2_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("NODE_CHANNEL_FD", "3")
    monkeypatch.setenv("NODE_UNIQUE_ID", "1")
    out = tmp_path / "out"
    script = tmp_path / "send.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n%s\\n%s" "$1" "$2" '
                      f'"${{NODE_CHANNEL_FD:-unset}}${{NODE_UNIQUE_ID:-unset}}" > {out}\n')
    script.chmod(0o755)
    await ScriptNotifier(script, "sysadmin").send("title", "body")
    assert out.read_text().splitlines() == ["sysadmin", "title", "body", "unsetunset"]


async def test_script_timeout(tmp_path):
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    with pytest.raises(RuntimeError, match="did not finish"):
        await ScriptNotifier(script, "room", timeout=0.5).send("t", "m")


async def test_group_never_raises_and_logs_without_token(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    token_file = tmp_path / "token"
    token_file.write_text("syt_secret_token")
    group = NotifierGroup([ScriptNotifier(tmp_path / "missing.sh", "r"),
                           MatrixNotifier("http://127.0.0.1:1", "!r:x", token_file)])
    assert await group.send("t", "m") == 0
    assert caplog.text.count("notification_failed") == 2
    assert "syt_secret_token" not in caplog.text


@pytest.mark.slow
async def test_the_script_limit_is_15_seconds_by_default(tmp_path):
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\nsleep 60\n")
    script.chmod(0o755)
    notifier = ScriptNotifier(script, "room")
    started = asyncio.get_running_loop().time()
    with pytest.raises(RuntimeError, match="did not finish within 15s"):
        await notifier.send("t", "m")
    assert 14 < asyncio.get_running_loop().time() - started < 45
