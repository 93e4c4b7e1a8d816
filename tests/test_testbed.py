"""Tests of the test bed itself, not of the product (docs/reliability.md does not count
them): the dev server survives a lost port race and keeps its address across restarts; the
originating-task helper writes what the tooling would."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from testbed.devserver import DevServer, free_port, port_answers
from testbed.helpers import file_status, make_origin, task_files
from testbed.jaeger import Jaeger


def test_free_ports_avoid_the_ephemeral_range_and_repeats():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(10000 <= port < low for port in ports)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process PID listens on (its socket inodes matched in /proc/net/tcp*)."""
    fds = Path(f"/proc/{pid}/fd")
    inodes = {link[8:-1] for link in (str(fd.readlink()) for fd in fds.iterdir())
              if link.startswith("socket:[")}
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_jaeger_listens_on_its_own_ports_only_and_leaves_nothing_behind(jaeger_path, tmp_path):
    backend = Jaeger(jaeger_path, tmp_path)
    backend.start()
    assert backend.process is not None
    try:
        assert listening_ports(backend.process.pid) == set(backend.ports)
    finally:
        backend.stop()
    assert backend.process.poll() is not None
    assert not any(port_answers(port) for port in backend.ports)


def test_taken_ui_port_is_retried_and_restart_keeps_the_frontend(cli_path, tmp_path):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", free_port()))
    squatter.listen()
    taken = squatter.getsockname()[1]
    dev = DevServer(cli_path, tmp_path / "db", free_port(), taken, tmp_path / "server.log")
    try:
        dev.start()
        first = dev.port
        assert dev.ui_port != taken and port_answers(dev.ui_port)
        assert "address already in use" in (tmp_path / "server.log").read_text()
        dev.stop()
        assert not port_answers(first)
        dev.start()
        assert dev.port == first and port_answers(first)
    finally:
        squatter.close()
        dev.stop()


def test_originating_status_helper(dirs):
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    task_id = make_origin(dirs["tasks"], status="approved")
    assert file_status(dirs["tasks"], task_id) == "approved"


def test_strict_task_files_names_an_unreadable_file(tmp_path):
    """A count of files per stage must see an unreadable duplicate, not skip it (#37.4)."""
    make_origin(tmp_path)
    (tmp_path / "20260101-000000-deadbeef.yml").write_text("id: [unclosed\n")
    assert len(task_files(tmp_path)) == 1  # the lenient read, for tests that plant junk
    with pytest.raises(AssertionError, match="unreadable task file 20260101-000000-deadbeef"):
        task_files(tmp_path, strict=True)


async def test_a_cut_link_moves_no_bytes_until_restored():
    """testbed/netcut.py: bytes flow, stall while cut (held, not dropped), then arrive."""
    import asyncio

    import pytest

    from testbed.netcut import net_cut

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with net_cut(f"127.0.0.1:{port}") as link:
            reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
            writer.write(b"one")
            assert await asyncio.wait_for(reader.readexactly(3), 5) == b"one"
            link.cut()
            writer.write(b"two")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading := asyncio.ensure_future(
                    reader.readexactly(3))), 0.5)
            link.restore()
            assert await asyncio.wait_for(reading, 5) == b"two"
            writer.close()
    finally:
        server.close()
