"""A TCP proxy to simulate an outage: cut() drops the listener and every connection,
restore() listens again on the same port.

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.rewrite(postgres_url)   # point the client at the proxy
        await proxy.cut()                   # server "down": refused, existing links closed
        await proxy.restore()               # server "back"
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self._port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def for_url(cls, url: str, default_port: int) -> TcpProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    @property
    def port(self) -> int:
        return self._port

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def rewrite(self, url: str) -> str:
        """``url`` pointing at this proxy instead of the target."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.listen_host}:{self._port}"))

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port afterwards)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._link, self.listen_host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    restore = start

    async def cut(self) -> None:
        """Stop listening and abort every open connection, on both sides."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        links = list(self._links)
        for link in links:
            link.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cut()

    async def _link(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self._writers.add(client)
        upstream: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(5):
                upstream_reader, upstream = await asyncio.open_connection(*self.target)
            self._writers.add(upstream)
            pumps = [
                asyncio.create_task(_pump(client_reader, upstream)),
                asyncio.create_task(_pump(upstream_reader, client)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, TimeoutError):
            pass
        finally:
            for writer in (client, upstream):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.transport.abort()
            self._links.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
