"""Pieces every HTTP service of this repository shares: uvicorn under our own
signal handling, a socket bound before uvicorn (so a taken port is our error,
not uvicorn's ``sys.exit``), and a bounded wait for startup and for a stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn

STARTUP_DEADLINE_S = 15.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupError(Exception):
    """A service could not start (its port is taken, for example)."""


class QuietSignalsServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the service's lifecycle owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def stop_on_signals(stop: asyncio.Event) -> AsyncIterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while the block runs."""
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def listen(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn; a port in use raises StartupError.

    TCP_NODELAY is set here because accepted connections inherit it: asyncio
    sets it itself only on sockets it created, and without it every response
    waits out the peer's delayed ACK (about 40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


async def wait_started(
    server: uvicorn.Server, task: asyncio.Task[None], deadline_s: float = STARTUP_DEADLINE_S
) -> None:
    """Return once uvicorn accepts connections; StartupError if it gave up."""
    async with asyncio.timeout(deadline_s):
        while not server.started:
            if task.done():
                raise StartupError(
                    f"the HTTP server could not start on {server.config.host}:{server.config.port}"
                )
            await asyncio.sleep(0.005)


async def wait_for_stop(stop: asyncio.Event, http_task: asyncio.Task[None]) -> None:
    """Block until a stop is asked for or the HTTP server ends by itself."""
    stop_wait = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_wait.cancel()
