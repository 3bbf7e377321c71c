"""A small HTTP/1.1 client for health probes: one kept-alive connection per probe.

Why not httpx here: a probe is one body-less request, repeated every few
milliseconds, and what it measures is when the target answers. On asyncio's
protocol layer one exchange costs a few tens of microseconds of CPU (httpx's
stack costs about ten times that, and importing it costs a CLI run 60 ms), so a
thousand targets can be watched at 10 Hz from one core.

Two things keep the measured moment true:

* **Delayed ACKs.** A server that writes headers and body separately (Python's
  http.server does) has Nagle hold the body until the client ACKs the headers;
  on a reused connection Linux delays that ACK by up to 40 ms. When a piece of
  an answer arrives and more is due, the client sets TCP_QUICKACK, which sends
  the pending ACK at once, and the body follows. An answer that comes in one
  piece costs no extra system call.
* **Stale connections.** A connection kept from before a restart is dead: a
  request on a reused connection that gets no byte of answer (reset, EOF) is
  sent once more on a new connection, within the same deadline. A new
  connection's failure is the answer.

A connection idle for :data:`IDLE_CLOSE_S` is closed, so a probe that stopped
polling does not hold a slot of the server. Probes of one request share one
client (:class:`HttpWireClient`), so fifty steps probing one URL use one
connection. Bodies are capped (by default at :data:`MAX_BODY_BYTES`), headers at
:data:`MAX_HEADER_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from test_coordinator.runtime.os_errors import os_error_reason

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
IDLE_CLOSE_S = 1.0
MAX_IDLE = 4

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
_NO_BODY_STATUS = frozenset({204, 304})


class HttpWireError(Exception):
    """The exchange failed; the message says how (connect, read, protocol)."""


class _StaleConnection(HttpWireError):
    """A reused connection closed before any byte of the answer: try a new one."""


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """Where a request goes: parsed once from the URL."""

    scheme: str
    host: str
    port: int
    request_target: str
    host_header: str

    @classmethod
    def parse(cls, url: str) -> HttpTarget:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise HttpWireError(f"invalid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise HttpWireError(f"unsupported URL scheme {parts.scheme!r}; allowed: http, https")
        host = parts.hostname
        if not host:
            raise HttpWireError("invalid URL: no host")
        default_port = 443 if scheme == "https" else 80
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        netloc_host = f"[{host}]" if ":" in host else host
        host_header = netloc_host if port in (None, default_port) else f"{netloc_host}:{port}"
        return cls(scheme, host, port or default_port, target, host_header)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ", "."""
    body: bytes


class _Exchange(asyncio.Protocol):
    """One connection: sends a request, parses the answer, says whether it can be reused."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self._socket: socket.socket | None = None
        self.closed = False
        self.reusable = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[HttpAnswer] | None = None
        self._head_only = False
        self._received_any = False
        self._eof = False
        self._seen_head: tuple[int, str, dict[str, str], int] | None = None
        """The answer's head once read (status, version, headers, where the body starts)."""

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._socket = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        self._buffer += data
        if not self._try_complete():
            self._quickack()  # more to come: ACK what came now, so Nagle lets the rest go

    def eof_received(self) -> bool | None:
        self._eof = True
        self._try_complete()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if not self._received_any:
                reason = _reason(exc) if exc else "closed by the server"
                waiter.set_exception(_StaleConnection(f"connection lost: {reason}"))
            else:
                waiter.set_exception(HttpWireError("connection lost during the answer"))

    # use

    def send(self, request: bytes, *, head_only: bool) -> asyncio.Future[HttpAnswer]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._buffer.clear()
        self._head_only = head_only
        self._received_any = False
        self._seen_head = None
        self.reusable = False
        self.transport.write(request)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _quickack(self) -> None:
        """ACK at once what has arrived (Linux sends the pending delayed ACK now)."""
        if _QUICKACK is not None and self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def _try_complete(self) -> bool:
        """Settle the waiter if the answer is whole (or broken); False while more is due."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return True
        try:
            answer = self._parse()
        except HttpWireError as exc:
            waiter.set_exception(exc)
            return True
        if answer is not None:
            self._waiter = None
            waiter.set_result(answer)
            return True
        if self._eof:
            if not self._received_any:
                waiter.set_exception(_StaleConnection("connection closed by the server"))
            else:
                waiter.set_exception(HttpWireError("the server closed the connection mid-answer"))
            return True
        return False

    def _parse(self) -> HttpAnswer | None:
        buffer = self._buffer
        while self._seen_head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise HttpWireError(f"headers longer than {MAX_HEADER_BYTES} bytes")
                return None
            status, version, headers = _head(bytes(buffer[:end]))
            if 100 <= status < 200 and status != 101:
                del buffer[: end + 4]  # an interim answer (100 Continue): the real one follows
                continue
            self._seen_head = (status, version, headers, end + 4)  # kept while the body comes
        status, version, headers, body_start = self._seen_head
        keep_alive = _keeps_alive(version, headers)
        if self._head_only or status in _NO_BODY_STATUS:
            body, complete = b"", True
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parsed = _dechunk(buffer, body_start, self.max_body)
            body, complete = (parsed, True) if parsed is not None else (b"", False)
        elif "content-length" in headers:
            length = _content_length(headers["content-length"])
            if length > self.max_body:
                raise HttpWireError(f"body of {length} bytes, more than {self.max_body}")
            complete = len(buffer) - body_start >= length
            body = bytes(buffer[body_start : body_start + length]) if complete else b""
        else:
            keep_alive = False  # the body runs to the end of the connection
            if len(buffer) - body_start > self.max_body:
                raise HttpWireError(f"body longer than {self.max_body} bytes")
            complete = self._eof
            body = bytes(buffer[body_start:]) if complete else b""
        if not complete:
            return None
        self.reusable = keep_alive and not self._eof
        return HttpAnswer(status, headers, body)


def _head(raw: bytes) -> tuple[int, str, dict[str, str]]:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HttpWireError("undecodable headers") from None
    status_line, _, rest = text.partition("\r\n")
    version, _, tail = status_line.partition(" ")
    code = tail[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HttpWireError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in rest.split("\r\n") if rest else ():
        name, colon, value = line.partition(":")
        if not colon:
            raise HttpWireError(f"malformed header line {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(code), version, headers


def _keeps_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _content_length(value: str) -> int:
    first = value.split(",")[0].strip()
    if not first.isascii() or not first.isdigit():
        raise HttpWireError(f"invalid Content-Length {value[:40]!r}")
    return int(first)


def _dechunk(buffer: bytearray, start: int, max_body: int) -> bytes | None:
    """The body of a chunked answer starting at ``start``, or None while incomplete."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpWireError(f"invalid chunk size {size_text[:20]!r}") from None
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            return bytes(body) if trailer_end >= 0 else None
        if len(body) + size > max_body:
            raise HttpWireError(f"body longer than {max_body} bytes")
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        position += size + 2


def _reason(exc: Exception) -> str:
    return os_error_reason(exc) if isinstance(exc, OSError) else str(exc) or type(exc).__name__


class HttpWireClient:
    """Sends one kind of request to one URL, again and again, on kept-alive connections.

    Requests may overlap (two probes of one URL, an ``always`` and a step): each
    takes an idle connection or opens one, and gives it back when the answer
    allows reuse; at most :data:`MAX_IDLE` wait, each closed after
    :data:`IDLE_CLOSE_S` unused.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.target = HttpTarget.parse(url)
        self.max_body = max_body
        self.method = method.upper()
        lines = [f"{self.method} {self.target.request_target} HTTP/1.1"]
        given = {k.lower() for k in (headers or {})}
        if "host" not in given:
            lines.append(f"Host: {self.target.host_header}")
        if "user-agent" not in given:
            lines.append("User-Agent: test-coordinator")
        if "accept" not in given:
            lines.append("Accept: */*")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        asked = (headers or {}).items()
        self._keep = not any(k.lower() == "connection" and "close" in v.lower() for k, v in asked)
        self._idle: list[tuple[_Exchange, float]] = []  # with the loop time it went idle
        self._sweeper: asyncio.TimerHandle | None = None
        self._busy: set[_Exchange] = set()
        self._ssl: ssl.SSLContext | None = None

    @property
    def open_connections(self) -> int:
        return len(self._busy) + sum(1 for c, _ in self._idle if not c.closed)

    async def request(self) -> HttpAnswer:
        """One exchange. Bound it with ``asyncio.timeout``: a cancelled exchange drops
        its connection (a half-read answer is never reused)."""
        connection = self._take_idle()
        reused = connection is not None
        try:
            if connection is None:
                connection = await self._connect()
            self._busy.add(connection)
            try:
                answer = await self._exchange(connection)
            except _StaleConnection:
                if not reused:
                    raise
                self._drop(connection)
                connection = await self._connect()
                self._busy.add(connection)
                answer = await self._exchange(connection)
        except _StaleConnection as exc:
            if connection is not None:
                self._drop(connection)
            raise HttpWireError(str(exc)) from None
        except BaseException:
            if connection is not None:
                self._drop(connection)
            raise
        self._give_back(connection)
        return answer

    def close(self) -> None:
        """Close every connection, idle or busy (a busy request then fails)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection, _ in self._idle:
            connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.close()
        self._busy.clear()

    def _take_idle(self) -> _Exchange | None:
        while self._idle:
            connection, _ = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    def _give_back(self, connection: _Exchange) -> None:
        self._busy.discard(connection)
        if not (connection.reusable and self._keep) or len(self._idle) >= MAX_IDLE:
            connection.close()
            return
        loop = asyncio.get_running_loop()
        self._idle.append((connection, loop.time()))
        if self._sweeper is None:
            self._sweeper = loop.call_later(IDLE_CLOSE_S, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle for IDLE_CLOSE_S; one timer per client, not per request."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        kept = []
        for connection, since in self._idle:
            if now - since >= IDLE_CLOSE_S:
                connection.close()
            elif not connection.closed:
                kept.append((connection, since))
        self._idle = kept
        self._sweeper = None
        if kept:
            oldest = min(since for _, since in kept)
            self._sweeper = loop.call_later(oldest + IDLE_CLOSE_S - now, self._sweep)

    def _drop(self, connection: _Exchange) -> None:
        self._busy.discard(connection)
        connection.close()

    async def _exchange(self, connection: _Exchange) -> HttpAnswer:
        return await connection.send(self._request, head_only=self.method == "HEAD")

    async def _connect(self) -> _Exchange:
        loop = asyncio.get_running_loop()
        target = self.target
        context = None
        if target.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            _, protocol = await loop.create_connection(
                lambda: _Exchange(self.max_body), target.host, target.port, ssl=context
            )
        except ssl.SSLError as exc:
            raise HttpWireError(f"TLS failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise HttpWireError(f"cannot connect: {os_error_reason(exc)}") from None
        return protocol
