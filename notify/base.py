"""The notifier interface and the group that fans a message out and swallows failures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger("notify")


class Notifier(Protocol):
    """A backend that delivers one message or raises."""

    name: str

    async def send(self, title: str, message: str) -> None: ...


class NotifierGroup:
    """Send to every backend; log each failure, never raise."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    async def send(self, title: str, message: str) -> int:
        """Deliver to all backends; return how many succeeded."""
        delivered = 0
        for notifier in self.notifiers:
            try:
                await notifier.send(title, message)
                delivered += 1
            except Exception as err:
                log.warning("notification_failed",
                            extra={"notifier": notifier.name, "error": str(err)[:300]})
        return delivered

    async def send_each(self, title: str, message: str,
                        skip: Sequence[str] = ()) -> dict[str, str | None]:
        """Deliver to every backend not in SKIP: each backend's name -> None when it took the
        message, else why not (one line)."""
        results: dict[str, str | None] = {}
        for notifier in self.notifiers:
            if notifier.name in skip:
                continue
            try:
                await notifier.send(title, message)
                results[notifier.name] = None
            except Exception as err:
                reason = " ".join(str(err).split())[:300] or type(err).__name__
                log.warning("notification_failed",
                            extra={"notifier": notifier.name, "error": reason})
                results[notifier.name] = reason
        return results
