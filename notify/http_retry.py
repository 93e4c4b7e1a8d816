"""POST/PUT with bounded retries and exponential backoff for the HTTP notifiers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


async def request_with_retry(method: str, url: str, *, attempts: int = 3,
                             backoff: float = 0.5, timeout: float = 10.0,
                             **kwargs: Any) -> httpx.Response:
    """Send the request; retry network errors and retryable statuses; raise on final failure."""
    last: str = ""
    async with httpx.AsyncClient(timeout=timeout) as client:
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
            try:
                response = await client.request(method, url, **kwargs)
            except httpx.HTTPError as err:
                last = type(err).__name__
                continue
            if response.status_code < 300:
                return response
            last = f"HTTP {response.status_code}"
            if response.status_code not in RETRY_STATUS:
                break
    raise RuntimeError(f"{method} {httpx.URL(url).copy_with(query=None)} failed: {last}")
