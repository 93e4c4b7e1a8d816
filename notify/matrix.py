"""Matrix client-server API: send an m.text message to a room with an access token from a file."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

from notify.http_retry import request_with_retry


class MatrixNotifier:
    """PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}."""

    name = "matrix"

    def __init__(self, homeserver: str, room_id: str, token_file: Path) -> None:
        self.homeserver = homeserver.rstrip("/")
        self.room_id = room_id
        self.token_file = token_file

    async def send(self, title: str, message: str) -> None:
        token = self.token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise RuntimeError(f"Matrix access token file {self.token_file} is empty")
        txn = uuid.uuid4().hex  # one id for all retries: the homeserver deduplicates
        url = (f"{self.homeserver}/_matrix/client/v3/rooms/{quote(self.room_id, safe='')}"
               f"/send/m.room.message/{txn}")
        body = {"msgtype": "m.text", "body": f"{title}\n{message}"}
        await request_with_retry("PUT", url, json=body,
                                 headers={"Authorization": f"Bearer {token}"})
