"""A TCP forwarder between one worker and the server whose traffic the test stops and resumes:
a network partition for real connections (no bytes move while cut; nothing is dropped)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from testbed.devserver import free_port


class NetCut:
    """Listens on 127.0.0.1:PORT and forwards to TARGET; `cut()` stalls every connection,
    old and new, as an unplugged link does; `restore()` lets the bytes flow again."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.port = free_port()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await source.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # a read that was under way when cut waits too
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()


@contextlib.asynccontextmanager
async def net_cut(target: str) -> AsyncIterator[NetCut]:
    """A started NetCut to TARGET, stopped on exit."""
    link = NetCut(target)
    await link.start()
    try:
        yield link
    finally:
        await link.stop()
