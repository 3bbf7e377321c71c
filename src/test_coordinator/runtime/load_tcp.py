"""TCP connects for the load generator: success is an accepted connection, closed at once.

A paused (SIGSTOPped) server still completes connects through the kernel's
accept queue until that queue is full; use an HTTP load to tell a paused service.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

from test_coordinator.runtime.load_loop import (
    IN_PROGRESS,
    WRITE,
    Attempt,
    LoadTarget,
    Outcome,
    Reactor,
    ResolvedAddresses,
    connect_nonblocking,
    errno_reason,
    failed,
    strerror,
)


class TcpTarget(LoadTarget):
    def __init__(self, host: str, port: int) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, not {port}")
        self.host = host
        self.port = port
        self.description = f"tcp://{host}:{port}" if ":" not in host else f"tcp://[{host}]:{port}"
        self.addresses = ResolvedAddresses(host, port)

    def begin(
        self, reactor: Reactor, started: float, deadline: float, finish: Callable[[Outcome], None]
    ) -> Attempt:
        attempt = _Connect(self, reactor, started, deadline, finish)
        attempt.next_address()
        return attempt


class _Connect(Attempt):
    def __init__(
        self,
        target: TcpTarget,
        reactor: Reactor,
        started: float,
        deadline: float,
        finish: Callable[[Outcome], None],
    ) -> None:
        super().__init__(started, deadline, finish)
        self._target = target
        self._reactor = reactor
        self._sock: socket.socket | None = None
        self._index = 0
        self._addresses: list[tuple[int, tuple[object, ...]]] | None = None
        self._last = errno.ECONNREFUSED

    def next_address(self) -> None:
        if self._addresses is None:
            try:
                self._addresses = self._target.addresses.get()
            except OSError as exc:
                why = f"cannot resolve {self._target.host}: {exc}"
                self.finish(failed(self._reactor.clock(), "other", why))
                return
        addresses = self._addresses
        while self._index < len(addresses):
            family, address = addresses[self._index]
            self._index += 1
            sock, code = connect_nonblocking(family, address)
            if code == 0:
                sock.close()
                self.finish(Outcome(True, self._reactor.clock()))
                return
            if code in IN_PROGRESS:
                self._sock = sock
                self._reactor.watch(sock, WRITE, self._on_writable)
                return
            sock.close()
            self._last = code
        self._target.addresses.forget()
        code = self._last
        self.finish(
            failed(self._reactor.clock(), errno_reason(code), f"cannot connect: {strerror(code)}")
        )

    def _on_writable(self, mask: int) -> None:
        sock = self._sock
        assert sock is not None
        now = self._reactor.clock()
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._close()
        if code == 0:
            self.finish(Outcome(True, now))
            return
        self._last = code
        self.next_address()

    def expire(self, now: float) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.getpeername()
            except OSError:
                pass
            else:  # connected, not yet seen
                self._close()
                self.finish(Outcome(True, now))
                return
        self._close()
        timeout = round(self.deadline - self.started, 6)
        self.finish(
            failed(max(now, self.deadline), "timeout", f"not connected within {timeout:g} s")
        )

    def abandon(self) -> None:
        self._close()
        self.done = True

    def _close(self) -> None:
        if self._sock is not None:
            self._reactor.unwatch(self._sock)
            self._sock.close()
            self._sock = None
