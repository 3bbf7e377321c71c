"""An HTTP server on asyncio that answers each request with bytes the test chose.

It speaks just enough HTTP to read a request head; what goes back (one write or
several, keep the connection or close it) is the test's ``Answer``. It counts
connections and requests, so a test can see whether a client reused one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Answer:
    chunks: Sequence[bytes]
    """Written one after another, each with its own ``drain``."""
    close: bool = False
    """Close the connection after the answer."""


def http_answer(
    status: int,
    body: bytes | str | object = b"",
    *,
    content_type: str = "application/json",
    headers: Sequence[tuple[str, str]] = (),
    close: bool = False,
    version: str = "HTTP/1.1",
) -> Answer:
    if isinstance(body, bytes):
        payload = body
    elif isinstance(body, str):
        payload = body.encode()
    else:
        payload = json.dumps(body).encode()
    lines = [f"{version} {status} X", f"Content-Type: {content_type}"]
    lines.append(f"Content-Length: {len(payload)}")
    lines += [f"{name}: {value}" for name, value in headers]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return Answer([head + payload], close=close)


@dataclass
class CannedServer:
    answer: Callable[[bytes], Answer]
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                answer = self.answer(head)
                for chunk in answer.chunks:
                    writer.write(chunk)
                    await writer.drain()
                if answer.close:
                    return
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    def drop_connections(self) -> None:
        """Close every open connection from the server's side (as a restart would)."""
        for writer in self.writers:
            writer.close()
        self.writers.clear()


@contextlib.asynccontextmanager
async def canned_server(answer: Callable[[bytes], Answer]) -> AsyncIterator[CannedServer]:
    canned = CannedServer(answer)
    server = await asyncio.start_server(canned._serve, "127.0.0.1", 0)
    canned.port = server.sockets[0].getsockname()[1]
    try:
        yield canned
    finally:
        server.close()
        canned.drop_connections()
        await server.wait_closed()
