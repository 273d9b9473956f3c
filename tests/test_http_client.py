"""The process's HTTP client keeps its connections to ElevenLabs open between requests, however many are in flight
at once (httpx keeps 20 by default: under more, every request beyond the 20th opened a new connection, a TCP and TLS
handshake, then closed it). Checked against a real HTTP server on loopback that counts the connections it accepts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from callcheck.config import Settings
from callcheck.runtime import KEEP_ALIVE, http_client

AT_ONCE = 50  # more than httpx's default 20, within KEEP_ALIVE


class CountingServer:
    """HTTP/1.1 with keep-alive; answers a wave of requests only once all of it has arrived (so they are all in
    flight at once), and counts the connections it accepted."""

    def __init__(self, wave: int) -> None:
        self.wave = wave
        self.connections = 0
        self._arrived = 0
        self._all_in = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self._arrived += 1
                if self._arrived % self.wave == 0:
                    self._all_in.set()
                await self._all_in.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def next_wave(self) -> None:
        self._all_in.clear()


async def test_connections_are_kept_for_as_many_requests_as_are_in_flight(tmp_path: Path) -> None:
    assert KEEP_ALIVE >= AT_ONCE
    counting = CountingServer(AT_ONCE)
    server = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with http_client(Settings(data_dir=tmp_path)) as http:
            for _ in range(2):
                answers = await asyncio.gather(*(http.get(f"http://127.0.0.1:{port}/") for _ in range(AT_ONCE)))
                assert [a.status_code for a in answers] == [200] * AT_ONCE
                counting.next_wave()
        # The second wave went out on the first wave's connections: none opened again.
        assert counting.connections == AT_ONCE
    finally:
        server.close()
        await server.wait_closed()
