"""A small HTTP/1.1 client for health probes: one kept-alive connection per probe.

Why not httpx here: a probe is one body-less request, repeated every few
milliseconds, and what it measures is when the target answers. On asyncio's
protocol layer one exchange costs a few tens of microseconds of CPU (httpx's
stack costs about ten times that, and importing it costs a CLI run 60 ms), so a
thousand targets can be watched at 10 Hz from one core.

Two things keep the measured moment true:

* **Delayed ACKs.** A server that writes headers and body separately (Python's
  http.server does) has Nagle hold the body until the client ACKs the headers;
  on a reused connection Linux delays that ACK by up to 40 ms. The client sets
  TCP_QUICKACK after each request and after each piece of the answer, so the
  headers are ACKed at once and the body follows.
* **Stale connections.** A connection kept from before a restart is dead: a
  request on a reused connection that gets no byte of answer (reset, EOF) is
  sent once more on a new connection, within the same deadline. A new
  connection's failure is the answer.

A connection idle for :data:`IDLE_CLOSE_S` is closed, so a probe that stopped
polling does not hold a slot of the server. Bodies are capped (by default at
:data:`MAX_BODY_BYTES`), headers at :data:`MAX_HEADER_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from test_coordinator.runtime.os_errors import os_error_reason

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
IDLE_CLOSE_S = 1.0

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
        self.closed = False
        self.reusable = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[HttpAnswer] | None = None
        self._head_only = False
        self._received_any = False
        self._eof = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._received_any = True
        self._buffer += data
        self._quickack()
        self._try_complete()

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
        self.reusable = False
        self.transport.write(request)
        self._quickack()
        return self._waiter

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _quickack(self) -> None:
        if _QUICKACK is None or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def _try_complete(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            answer = self._parse()
        except HttpWireError as exc:
            waiter.set_exception(exc)
            return
        if answer is not None:
            self._waiter = None
            waiter.set_result(answer)
        elif self._eof:
            if not self._received_any:
                waiter.set_exception(_StaleConnection("connection closed by the server"))
            else:
                waiter.set_exception(HttpWireError("the server closed the connection mid-answer"))

    def _parse(self) -> HttpAnswer | None:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise HttpWireError(f"headers longer than {MAX_HEADER_BYTES} bytes")
                return None
            status, version, headers = _head(bytes(buffer[:end]))
            if 100 <= status < 200 and status != 101:
                del buffer[: end + 4]  # an interim answer (100 Continue): the real one follows
                continue
            break
        body_start = end + 4
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
    """Sends one kind of request to one URL, again and again, on a kept-alive connection.

    Not safe for concurrent use: one request at a time (a probe polls sequentially).
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
        self._connection: _Exchange | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._ssl: ssl.SSLContext | None = None

    async def request(self) -> HttpAnswer:
        """One exchange. Bound it with ``asyncio.timeout``: a cancelled exchange drops
        its connection (a half-read answer is never reused)."""
        self._cancel_idle()
        connection = self._connection
        self._connection = None
        try:
            if connection is not None and not connection.closed:
                try:
                    answer = await self._exchange(connection)
                except _StaleConnection:
                    connection.close()
                    connection = await self._connect()
                    answer = await self._exchange(connection)
            else:
                connection = await self._connect()
                answer = await self._exchange(connection)
        except _StaleConnection as exc:
            if connection is not None:
                connection.close()
            raise HttpWireError(str(exc)) from None
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        if connection.reusable and self._keep:
            self._connection = connection
            self._idle = asyncio.get_running_loop().call_later(IDLE_CLOSE_S, self.close)
        else:
            connection.close()
        return answer

    def close(self) -> None:
        self._cancel_idle()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

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
