"""Give freed heap back to the system: a worker's memory follows its load down, not its peak."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

# As often as the production sweep: a burst's freed heap leaves within a period; one pass
# took 0.5 to 1.2 ms here (the worker's imports loaded, 40 MB freed in pieces).
TRIM_INTERVAL = 30.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (imports, parsing and bursts leave many
    behind that glibc would otherwise keep); False where this C library cannot."""
    return bool(_TRIM is not None and _TRIM(0) >= 0)


async def release_forever(interval: float = TRIM_INTERVAL) -> None:
    """Release once now (the start's garbage), then every INTERVAL seconds."""
    while True:
        await asyncio.to_thread(release_free_memory)
        await asyncio.sleep(interval)
