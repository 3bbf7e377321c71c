"""The proxy's listening socket, which a ``refuse`` fault closes and its clearing reopens.

While closed, the kernel answers a connect with RST (ECONNREFUSED): a host that
is up with nothing listening. It is opened again on the same port; if that
fails (another process took the port), it retries every 100 ms and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

BACKLOG = 4096
_RETRY_S = 0.1


class Listener:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._loop = loop
        self.host = host
        self.port = port
        self._factory = factory
        self._server: asyncio.Server | None = None
        self._wanted = True
        self._reopening: asyncio.Task[None] | None = None
        self.error: str | None = None  # why the last reopening failed

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def open(self) -> int:
        """Listen (the first time: on ``port``, 0 for any); the port. OSError if it cannot."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.setblocking(False)
            self._server = await self._loop.create_server(self._factory, sock=sock, backlog=BACKLOG)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.error = None
        return self.port

    def want(self, listening: bool) -> None:
        """Stop listening now, or start listening again (in the background)."""
        self._wanted = listening
        if not listening:
            self._stop()
        elif self._server is None and self._reopening is None:
            self._reopening = self._loop.create_task(self._reopen())

    async def reopened(self, timeout_s: float) -> None:
        """Wait, up to ``timeout_s``, for a reopening under way (none: return at once)."""
        reopening = self._reopening
        if reopening is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reopening), timeout_s)

    async def close(self) -> None:
        self._wanted = False
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopening
        self._stop()

    async def _reopen(self) -> None:
        try:
            while self._wanted and self._server is None:
                try:
                    await self.open()
                except OSError as exc:
                    self.error = f"cannot listen on {self.host}:{self.port} again: {exc}"
                    await asyncio.sleep(_RETRY_S)
            if not self._wanted:
                self._stop()
        finally:
            self._reopening = None

    def _stop(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket; open connections go on
            self._server = None
