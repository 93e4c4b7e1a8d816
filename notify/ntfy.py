"""ntfy push as the upstream worker sent it: POST the message with Title, Tags and high
Priority headers."""

from __future__ import annotations

from notify.http_retry import request_with_retry


class NtfyNotifier:
    """Posts to NTFY_URL."""

    name = "ntfy"

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(self, title: str, message: str) -> None:
        headers = {"Title": title.encode("ascii", "replace").decode(), "Tags": "warning",
                   "Priority": "high"}
        await request_with_retry("POST", self.url, content=message.encode("utf-8"),
                                 headers=headers)
