"""One proxied connection: the client's transport, the upstream's, and a pipe each way.

The client side is accepted first; its reading waits until the upstream
connection is made (or, under a partition, until the partition heals). An end
of stream is passed on per direction (half-close), and the connection is
closed once both directions have ended. A reset (or any error) on one side
resets the other: SO_LINGER 0, so the peer sees an RST rather than a FIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING, cast

from test_coordinator.netfault.pipe import Pipe
from test_coordinator.netfault.plan import Plans

if TYPE_CHECKING:
    from test_coordinator.netfault.proxy import NetfaultProxy

WRITE_HIGH_WATER = 256 * 1024
"""A transport's write buffer above this pauses reading the other side."""

CONNECT_TIMEOUT_S = 10.0

_LINGER_ZERO = struct.pack("ii", 1, 0)


def abort_with_reset(transport: asyncio.Transport | None) -> None:
    """Close ``transport`` at once, sending an RST rather than a FIN."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()


class Link:
    __slots__ = ("client", "closed", "down", "proxy", "touched", "up", "upstream")

    def __init__(self, proxy: NetfaultProxy, client: asyncio.Transport) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: asyncio.Transport | None = None
        self.closed = False
        self.touched: set[int] = set()  # serials of the faults that counted this connection
        client.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.up = Pipe(self, 0)
        self.down = Pipe(self, 1)
        self.up.attach(source=client, sink=None)  # pauses reading until upstream is there
        self.down.attach(source=None, sink=client)

    @property
    def buffered_bytes(self) -> int:
        return self.up.buffered_bytes + self.down.buffered_bytes

    def connect(self) -> None:
        """Open the upstream connection (in the background)."""
        task = self.proxy.loop.create_task(self._connect())
        self.proxy.track(task)

    async def _connect(self) -> None:
        host, port = self.proxy.upstream
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.proxy.loop.create_connection(lambda: UpstreamSide(self), host, port)
        except (OSError, TimeoutError) as exc:
            if not self.closed:
                self.proxy.upstream_failed(self, exc)

    def attach_upstream(self, transport: asyncio.Transport) -> None:
        if self.closed:
            transport.abort()
            return
        self.upstream = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.down.attach(source=transport, sink=None)
        self.up.attach(source=None, sink=transport)

    def replan(self, plans: Plans) -> None:
        self.up.replan(plans.upstream)
        self.down.replan(plans.downstream)

    def pipe_finished(self) -> None:
        if self.up.eof_out and self.down.eof_out:
            self.close()

    def close(self) -> None:
        """Close both sides after what they have to write (FIN)."""
        if self._finish():
            self.client.close()
            if self.upstream is not None:
                self.upstream.close()

    def reset(self) -> None:
        """Close both sides at once with an RST."""
        if self._finish():
            abort_with_reset(self.client)
            abort_with_reset(self.upstream)

    def lost(self, exc: Exception | None) -> None:
        """One side's transport is gone: a clean close closes the other, an error resets it."""
        if exc is None:
            self.close()
        else:
            self.reset()

    def _finish(self) -> bool:
        if self.closed:
            return False
        self.closed = True
        self.up.stop()
        self.down.stop()
        self.proxy.forget(self)
        return True


class _Side(asyncio.BufferedProtocol):
    """Reads into the proxy's one read buffer and hands what came to a pipe.

    One buffer serves every connection, since a read is handed on before the
    next one starts. A pipe passing bytes through writes them from the buffer
    itself (:meth:`Pipe.feed`), so on the pass-through path only the kernel
    copies them. A plain ``Protocol`` gets a new ``bytes`` for every read:
    asyncio's selector loop allocates (and, past malloc's mmap threshold, maps
    and unmaps) 256 KiB for every ``recv``, however small, about 20 µs a read;
    uvloop copies each read out of its own buffer, which with the page faults
    of the allocation was a quarter of the proxy's CPU time on a bulk transfer.
    """

    link: Link
    proxy: NetfaultProxy
    _pipe: Pipe

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.proxy.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._pipe.feed(self.proxy.read_buffer[:nbytes])

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.lost(exc)


class ClientSide(_Side):
    """The accepted connection's protocol: its bytes flow upstream."""

    def __init__(self, proxy: NetfaultProxy) -> None:
        self.proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.link = self.proxy.accept(cast(asyncio.Transport, transport))
        self._pipe = self.link.up

    def eof_received(self) -> bool:
        link = self.link
        link.up.feed_eof()  # passed on after what came before it, once there is an upstream
        if link.upstream is None and self.proxy.holds(link):
            self.proxy.held_ended(link)
        return True

    def pause_writing(self) -> None:
        self.link.down.set_sink_full(True)

    def resume_writing(self) -> None:
        self.link.down.set_sink_full(False)


class UpstreamSide(_Side):
    """The connection to the upstream server: its bytes flow downstream."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.proxy = link.proxy
        self._pipe = link.down

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.link.attach_upstream(cast(asyncio.Transport, transport))

    def eof_received(self) -> bool:
        self.link.down.feed_eof()
        return True

    def pause_writing(self) -> None:
        self.link.up.set_sink_full(True)

    def resume_writing(self) -> None:
        self.link.up.set_sink_full(False)
