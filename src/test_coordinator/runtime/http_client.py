"""The shared HTTP client the probes, scrapes and load generator use, and error wording."""

from __future__ import annotations

import os
import socket
import struct
import sys

import httpx

DEFAULT_MAX_CONNECTIONS = 100

# SO_LINGER on, 0 s: close() drops the socket at once (an RST) instead of leaving
# it in TIME_WAIT for a minute. struct linger is two ints, two u_shorts on Windows.
_ABORTIVE_CLOSE = [
    (
        socket.SOL_SOCKET,
        socket.SO_LINGER,
        struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0),
    )
]


def new_http_client(*, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> httpx.AsyncClient:
    """An AsyncClient for local targets: keep-alive pool, no proxies or .netrc from the
    environment, no redirects followed; each caller passes its own timeout.

    A request with ``Connection: close`` (what HttpProbe sends) does not use the pool:
    it gets a connection of its own, see :class:`_SplitTransport`.

    The caller owns it and must ``await client.aclose()``.
    """
    return httpx.AsyncClient(
        transport=_SplitTransport(max_connections),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(5.0),
    )


def wants_close(request: httpx.Request) -> bool:
    """Whether the request asks for its connection to be closed after the answer."""
    tokens = request.headers.get("connection", "").split(",")
    return any(token.strip().lower() == "close" for token in tokens)


class _SplitTransport(httpx.AsyncBaseTransport):
    """A keep-alive pool, and one-shot connections for ``Connection: close`` requests.

    A one-shot connection is new for the request, the server closes it after the
    answer, and our close is abortive (SO_LINGER 0) so neither side keeps it in
    TIME_WAIT: a probe every few milliseconds piles up no sockets. Why probes want
    this: a reused connection is in the kernel's delayed-ACK mode, and a server that
    writes headers and body separately (Python's http.server) has Nagle hold the
    body until our ACK, 40 ms later on Linux; a new connection ACKs at once.
    """

    def __init__(self, max_connections: int) -> None:
        self._pooled = httpx.AsyncHTTPTransport(
            trust_env=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._one_shot = httpx.AsyncHTTPTransport(
            trust_env=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=0),
            socket_options=_ABORTIVE_CLOSE,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._one_shot if wants_close(request) else self._pooled
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        try:
            await self._pooled.aclose()
        finally:
            await self._one_shot.aclose()


def describe_http_error(exc: BaseException) -> str:
    """One line saying what went wrong, with the operating system's reason when known.

    httpx reports a refused connection as "All connection attempts failed"; the
    refusal itself sits further down the chain of causes.
    """
    reason = _os_reason(exc)
    kind = {
        httpx.ConnectError: "cannot connect",
        httpx.ConnectTimeout: "connect timed out",
        httpx.ReadTimeout: "read timed out",
        httpx.WriteTimeout: "write timed out",
        httpx.PoolTimeout: "no free connection in the pool",
        httpx.ReadError: "read failed",
        httpx.WriteError: "write failed",
        httpx.RemoteProtocolError: "the server broke the HTTP protocol",
        httpx.UnsupportedProtocol: "unsupported URL",
        httpx.InvalidURL: "invalid URL",
    }.get(type(exc), type(exc).__name__)
    message = reason or str(exc) or type(exc).__name__
    return f"{kind}: {message}" if message != kind else kind


def os_error_reason(exc: OSError) -> str:
    """The system's wording for the error number ("Connection refused"), else the message.

    asyncio words a refused connect as "Connect call failed ('127.0.0.1', 80)",
    which hides the reason; the errno does not.
    """
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


def _os_reason(exc: BaseException) -> str:
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    found = ""
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            found = os_error_reason(current)
        for nxt in (current.__cause__, current.__context__, *current.args):
            if isinstance(nxt, BaseException):
                pending.append(nxt)
    return found
