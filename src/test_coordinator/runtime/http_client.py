"""The shared HTTP client the probes, scrapes and load generator use, and error wording."""

from __future__ import annotations

import os

import httpx

DEFAULT_MAX_CONNECTIONS = 100


def new_http_client(*, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> httpx.AsyncClient:
    """An AsyncClient for local targets: keep-alive pool, no proxies or .netrc from the
    environment, no redirects followed; each caller passes its own timeout.

    The caller owns it and must ``await client.aclose()``.
    """
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        timeout=httpx.Timeout(5.0),
    )


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
