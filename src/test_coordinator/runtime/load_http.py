"""HTTP/1.1 requests for the load generator, on plain non-blocking sockets.

A small keep-alive pool of its own (a list: a connection is in it, or in use by
exactly one attempt, or closed), so that a timed-out request can never strand a
pool slot. An idle connection is watched: one the server closed is dropped
before it is used again. A request that finds its reused connection closed
before any byte of the answer (the server's keep-alive ran out at that moment)
is sent once more on a new connection, when its method is idempotent.

The latency of a plain (not TLS) answer ends at the kernel's arrival time of the
segment that completed it, so neither a busy machine nor a late look at the
socket adds to it; a deadline counts the answer in time if it had arrived by then.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit

from test_coordinator.runtime.load_loop import (
    IN_PROGRESS,
    READ,
    RX_ANCILLARY,
    WRITE,
    Attempt,
    LoadTarget,
    Outcome,
    Reactor,
    ResolvedAddresses,
    connect_nonblocking,
    enable_rx_timestamps,
    errno_reason,
    failed,
    os_error_code,
    rx_moment,
    strerror,
)

MAX_HEAD_BYTES = 64 * 1024
MAX_IDLE_CONNECTIONS = 64
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_URL_SAFE = "/?&=%:@!$'()*+,;~-._[]"


class ProtocolError(Exception):
    pass


class ResponseParser:
    """Where one HTTP/1.1 response ends: status, keep-alive, and the body's framing
    (Content-Length, chunked, or until the connection closes). The body is dropped."""

    def __init__(self, *, head_request: bool = False) -> None:
        self._head_request = head_request
        self._buffer = bytearray()
        self._state = "head"
        self._remaining = 0
        self.status: int | None = None
        self.keep_alive = True
        self.complete = False

    @property
    def leftover(self) -> bool:
        """Bytes past the end of the answer (the connection cannot be trusted again)."""
        return bool(self._buffer)

    @property
    def until_close(self) -> bool:
        return self._state == "close"

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while not self.complete and self._step():
            pass

    def end_of_stream(self) -> bool:
        """The server closed the connection: True if that ends the answer."""
        if self._state == "close":
            self.complete = True
        return self.complete

    def _step(self) -> bool:
        """Consume what can be consumed; False when more bytes are needed."""
        buffer = self._buffer
        if self._state == "head":
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
                return False
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            self._head(head)
            return True
        if self._state in ("length", "chunk-data"):
            take = min(self._remaining, len(buffer))
            del buffer[:take]
            self._remaining -= take
            if self._remaining:
                return False
            if self._state == "length":
                self.complete = True
            else:
                self._state = "chunk-size"
            return True
        if self._state in ("chunk-size", "trailer"):
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError("chunk header too long")
                return False
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if self._state == "trailer":
                self.complete = not line
                return True
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:20]!r}") from None
            if size == 0:
                self._state = "trailer"
            else:
                self._state, self._remaining = "chunk-data", size + 2
            return True
        # until the connection closes
        buffer.clear()
        return False

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ProtocolError(f"not an HTTP response: {lines[0][:40]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise ProtocolError(f"bad status {parts[1][:10]!r}") from None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            headers[key] = (headers[key] + b"," if key in headers else b"") + value.strip()
        if 100 <= status < 200 and status != 101:
            return  # an interim answer: the real one follows
        self.status = status
        tokens = {t.strip().lower() for t in headers.get(b"connection", b"").split(b",")}
        if parts[0] == b"HTTP/1.0":
            self.keep_alive = b"keep-alive" in tokens
        else:
            self.keep_alive = b"close" not in tokens
        if self._head_request or status in (101, 204, 304):
            self.keep_alive = self.keep_alive and status != 101
            self.complete = True
        elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self._state = "chunk-size"
        elif b"content-length" in headers:
            try:
                self._remaining = int(headers[b"content-length"].split(b",")[0])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            self._state = "length"
            self.complete = self._remaining == 0
        else:
            self._state = "close"
            self.keep_alive = False


class _Connection:
    def __init__(self, sock: socket.socket, *, tls: bool) -> None:
        self.sock = sock
        self.tls = tls
        self.timestamps = not tls and enable_rx_timestamps(sock)
        self.uses = 0
        self.closed = False

    def close(self, reactor: Reactor) -> None:
        if not self.closed:
            self.closed = True
            reactor.unwatch(self.sock)
            self.sock.close()


class HttpTarget(LoadTarget):
    """``method url``; success is a status in ``expect_status`` (default: below 400)."""

    def __init__(
        self, url: str, method: str = "GET", expect_status: Sequence[int] | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"load needs an http:// or https:// URL, not {url!r}")
        self.description = url
        self.method = method.upper()
        self.expect_status = frozenset(expect_status) if expect_status is not None else None
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self._tls_context: ssl.SSLContext | None = None
        target = quote(parts.path or "/", safe=_URL_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_URL_SAFE)
        host_header = parts.netloc.rpartition("@")[2]
        lines = [
            f"{self.method} {target} HTTP/1.1",
            f"Host: {host_header}",
            "User-Agent: test-coordinator-load",
            "Accept: */*",
        ]
        if self.method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self.addresses = ResolvedAddresses(self.host, self.port)
        self._idle: list[_Connection] = []

    def begin(
        self, reactor: Reactor, started: float, deadline: float, finish: Callable[[Outcome], None]
    ) -> Attempt:
        attempt = _HttpAttempt(self, reactor, started, deadline, finish)
        attempt.begin()
        return attempt

    def close(self, reactor: Reactor) -> None:
        for conn in self._idle:
            conn.close(reactor)
        self._idle.clear()

    def tls_context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()
        return self._tls_context

    def take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    def put_idle(self, reactor: Reactor, conn: _Connection) -> None:
        if len(self._idle) >= MAX_IDLE_CONNECTIONS:
            conn.close(reactor)
            return
        self._idle.append(conn)

        def on_idle_event(mask: int) -> None:
            # Anything on an idle connection (the server closing it, or stray bytes)
            # makes it unusable.
            if conn in self._idle:
                self._idle.remove(conn)
            conn.close(reactor)

        reactor.watch(conn.sock, READ, on_idle_event)


class _HttpAttempt(Attempt):
    def __init__(
        self,
        target: HttpTarget,
        reactor: Reactor,
        started: float,
        deadline: float,
        finish: Callable[[Outcome], None],
    ) -> None:
        super().__init__(started, deadline, finish)
        self._target = target
        self._reactor = reactor
        self._conn: _Connection | None = None
        self._sock: socket.socket | None = None
        self._address_index = 0
        self._addresses: list[tuple[int, tuple[object, ...]]] | None = None
        self._retried = False
        self._reused = False
        self._received = False
        self._out = memoryview(target.request)
        self._parser = ResponseParser(head_request=target.method == "HEAD")
        self._arrived: float | None = None
        self._precise = False

    # -- start: a pooled connection, else a new one

    def begin(self) -> None:
        conn = self._target.take_idle()
        if conn is None:
            self._connect()
            return
        self._reused = True
        self._use(conn)

    def _use(self, conn: _Connection) -> None:
        self._conn = conn
        self._sock = conn.sock
        self._send(0)

    def _connect(self) -> None:
        if self._addresses is None:
            try:
                self._addresses = self._target.addresses.get()
            except OSError as exc:
                why = f"cannot resolve {self._target.host}: {exc}"
                self._end(failed(self._now(), "other", why))
                return
        addresses = self._addresses
        last = errno.ECONNREFUSED
        while self._address_index < len(addresses):
            family, address = addresses[self._address_index]
            sock, code = connect_nonblocking(family, address, nodelay=True)
            if code == 0:
                self._connected(sock)
                return
            if code in IN_PROGRESS:
                self._sock = sock
                self._reactor.watch(sock, WRITE, self._on_connect)
                return
            sock.close()
            last = code
            self._address_index += 1
        self._cannot_connect(last)

    def _on_connect(self, mask: int) -> None:
        sock = self._sock
        assert sock is not None
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            self._connected(sock)
            return
        self._reactor.unwatch(sock)
        sock.close()
        self._sock = None
        self._address_index += 1
        if self._addresses is not None and self._address_index < len(self._addresses):
            self._connect()
        else:
            self._cannot_connect(code)

    def _cannot_connect(self, code: int) -> None:
        self._target.addresses.forget()
        self._end(failed(self._now(), errno_reason(code), f"cannot connect: {strerror(code)}"))

    def _connected(self, sock: socket.socket) -> None:
        if not self._target.tls:
            self._use(_Connection(sock, tls=False))
            return
        self._reactor.unwatch(sock)
        context = self._target.tls_context()
        self._sock = context.wrap_socket(
            sock, server_hostname=self._target.host, do_handshake_on_connect=False
        )
        self._handshake(0)

    def _handshake(self, mask: int) -> None:
        sock = self._sock
        assert sock is not None and isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._reactor.watch(sock, READ, self._handshake)
            return
        except ssl.SSLWantWriteError:
            self._reactor.watch(sock, WRITE, self._handshake)
            return
        except ssl.SSLError as exc:
            self._drop_socket()
            self._end(failed(self._now(), "other", f"TLS handshake failed: {exc.reason or exc}"))
            return
        except OSError as exc:
            self._drop_socket()
            code = os_error_code(exc)
            self._end(failed(self._now(), errno_reason(code), f"TLS handshake: {strerror(code)}"))
            return
        self._use(_Connection(sock, tls=True))

    # -- the exchange

    def _send(self, mask: int) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while self._out:
                sent = conn.sock.send(self._out)
                self._out = self._out[sent:]
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            self._reactor.watch(conn.sock, WRITE, self._send)
            return
        except ssl.SSLWantReadError:
            self._reactor.watch(conn.sock, READ, self._send)
            return
        except OSError as exc:
            self._broken(os_error_code(exc))
            return
        self._reactor.watch(conn.sock, READ, self._receive)

    def _receive(self, mask: int) -> None:
        conn = self._conn
        if conn is None or self.done:
            return
        sock = conn.sock
        clock = self._reactor.clock
        while True:
            arrived: float | None = None
            try:
                if conn.timestamps:
                    data, ancillary, _, _ = sock.recvmsg(65536, RX_ANCILLARY)
                    arrived = rx_moment(ancillary, clock)
                else:
                    data = sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            except ssl.SSLWantWriteError:
                self._reactor.watch(sock, WRITE, self._receive)
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            except ssl.SSLError as exc:
                self._close_conn()
                self._end(failed(clock(), "other", f"TLS error: {exc.reason or exc}"))
                return
            except OSError as exc:
                self._broken(os_error_code(exc))
                return
            if not data:
                self._end_of_stream()
                return
            self._received = True
            self._precise = arrived is not None
            self._arrived = arrived if arrived is not None else clock()
            try:
                self._parser.feed(data)
            except ProtocolError as exc:
                self._close_conn()
                self._end(failed(self._arrived, "other", f"bad HTTP answer: {exc}"))
                return
            if self._parser.complete:
                self._answered()
                return

    def _answered(self) -> None:
        parser, conn = self._parser, self._conn
        assert parser.status is not None and conn is not None and self._arrived is not None
        done_at = max(self._arrived, self.started)
        if self._precise and done_at > self.deadline:
            self._close_conn()
            self._end(self._timeout(self.deadline))
            return
        self._conn = None
        if parser.keep_alive and not parser.leftover and not conn.closed:
            conn.uses += 1
            self._target.put_idle(self._reactor, conn)
        else:
            conn.close(self._reactor)
        status = parser.status
        expected = self._target.expect_status
        if status in expected if expected is not None else status < 400:
            self._end(Outcome(True, done_at, status=status))
        else:
            self._end(failed(done_at, f"status {status}", f"status {status}", status))

    def _end_of_stream(self) -> None:
        if self._parser.end_of_stream():
            self._answered()
            return
        if self._may_retry():
            return
        self._close_conn()
        what = "in the middle of the answer" if self._received else "before the answer"
        self._end(failed(self._now(), "reset", f"connection closed {what}"))

    def _broken(self, code: int) -> None:
        if errno_reason(code) == "reset" and self._may_retry():
            return
        self._close_conn()
        reason = errno_reason(code)
        words = "connection reset" if reason == "reset" else "connection failed"
        self._end(failed(self._now(), reason, f"{words}: {strerror(code)}"))

    def _may_retry(self) -> bool:
        """A reused connection that the server had closed: send again on a new one."""
        if not self._reused or self._received or self._retried:
            return False
        if self._target.method not in IDEMPOTENT:
            return False
        self._close_conn()
        self._retried = True
        self._reused = False
        self._out = memoryview(self._target.request)
        self._address_index = 0
        self._connect()
        return True

    # -- endings

    def expire(self, now: float) -> None:
        if self._conn is not None:
            self._receive(0)  # the answer may be in, unread
        if self.done:
            return
        self._close_conn()
        self._drop_socket()
        self.finish(self._timeout(max(now, self.deadline)))

    def _timeout(self, at: float) -> Outcome:
        return failed(
            at, "timeout", f"no answer within {round(self.deadline - self.started, 6):g} s"
        )

    def abandon(self) -> None:
        self._close_conn()
        self._drop_socket()
        self.done = True

    def _end(self, outcome: Outcome) -> None:
        self._conn = None
        self._sock = None
        self.finish(outcome)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close(self._reactor)
            self._conn = None
            self._sock = None

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._reactor.unwatch(self._sock)
            self._sock.close()
            self._sock = None

    def _now(self) -> float:
        return self._reactor.clock()
