"""A tiny HTTP service for the scenario examples, tests and benchmarks (stdlib only).

Usage::

    python tiny_server.py --port 8081 [--name orders] [--host 127.0.0.1]
                          [--unhealthy-for-ms 500] [--unhealthy-until MONOTONIC_S]
                          [--split-writes]

Endpoints (HTTP/1.1, keep-alive):

* ``GET /health``: 200 ``{"status": "healthy", "service": NAME}``, or 503 with
  ``"status": "unhealthy"`` while the unhealthy window lasts.
* ``GET /metrics``: Prometheus text: ``requests_total{path=...}`` (a counter per
  path) and ``uptime_seconds``.
* ``GET /``: 200 ``ok``.
* ``POST /admin/unhealthy?for_ms=N`` or ``?until=T``: be unhealthy for N ms from
  now, or until the moment T on the system's monotonic clock (``time.monotonic()``
  in any process on the machine reads the same clock), so that a benchmark knows
  exactly when the service becomes healthy again. ``for_ms=0`` makes it healthy.

``--split-writes`` answers as Python's http.server does: the head and the body in
two writes, with Nagle's algorithm on, so a client that delays its ACK of the head
waits for the body (what benchmarks use to show a client does not).

It prints ``tiny-server NAME listening on PORT`` once it accepts connections (the
port is the real one when ``--port 0`` was asked), and ``tiny-server NAME
stopping`` on SIGTERM or SIGINT, after which it exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time
from urllib.parse import parse_qs, urlsplit

MAX_HEADER_BYTES = 16 * 1024
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class TinyServer:
    def __init__(self, name: str, unhealthy_until: float, *, split_writes: bool = False) -> None:
        self.name = name
        self.split_writes = split_writes
        self.started_at = time.monotonic()
        self.unhealthy_until = unhealthy_until
        self.requests: dict[str, int] = {}
        self.connections: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[None]] = set()

    def healthy(self) -> bool:
        return time.monotonic() >= self.unhealthy_until

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        self.connections.add(writer)
        if self.split_writes:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # asyncio turns Nagle off; http.server leaves it on
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                keep_alive = await self.handle(head, reader, writer)
                await writer.drain()
                if not keep_alive:
                    return
        except ConnectionError:
            return
        finally:
            self.connections.discard(writer)
            if task is not None:
                self.handlers.discard(task)
            writer.close()

    async def handle(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            self.respond(writer, 400, "text/plain", b"bad request line\n", keep_alive=False)
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or "0")
        if length:
            await reader.readexactly(length)
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")

        url = urlsplit(target)
        self.requests[url.path] = self.requests.get(url.path, 0) + 1
        status, content_type, body = self.route(method, url.path, parse_qs(url.query))
        self.respond(writer, status, content_type, body, keep_alive=keep_alive)
        return keep_alive

    def route(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        if path == "/admin/unhealthy":
            if method != "POST":
                return 405, "text/plain", b"use POST\n"
            return self.set_unhealthy(query)
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"use GET\n"
        if path == "/health":
            healthy = self.healthy()
            status = "healthy" if healthy else "unhealthy"
            body = json.dumps({"status": status, "service": self.name}).encode()
            return (200 if healthy else 503), "application/json", body
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics().encode()
        if path == "/":
            return 200, "text/plain", b"ok"
        return 404, "text/plain", b"not found\n"

    def set_unhealthy(self, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        try:
            if "until" in query:
                self.unhealthy_until = float(query["until"][0])
            elif "for_ms" in query:
                self.unhealthy_until = time.monotonic() + float(query["for_ms"][0]) / 1000.0
            else:
                return 400, "text/plain", b"give for_ms=N or until=MONOTONIC_SECONDS\n"
        except ValueError:
            return 400, "text/plain", b"for_ms and until are numbers\n"
        body = json.dumps({"unhealthy_until": self.unhealthy_until}).encode()
        return 200, "application/json", body

    def metrics(self) -> str:
        lines = [
            "# HELP requests_total Requests received, by path.",
            "# TYPE requests_total counter",
        ]
        for path, count in sorted(self.requests.items()):
            label = path.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'requests_total{{path="{label}"}} {count}')
        lines += [
            "# HELP uptime_seconds Seconds since the server started.",
            "# TYPE uptime_seconds gauge",
            f"uptime_seconds {time.monotonic() - self.started_at:.6f}",
        ]
        return "\n".join(lines) + "\n"

    def respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        content_type: str,
        body: bytes,
        *,
        keep_alive: bool,
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        if self.split_writes:
            writer.write(head.encode("latin-1"))
            writer.write(body)
        else:
            writer.write(head.encode("latin-1") + body)


async def serve(args: argparse.Namespace) -> None:
    now = time.monotonic()
    if args.unhealthy_until is not None:
        unhealthy_until = args.unhealthy_until
    else:
        unhealthy_until = now + args.unhealthy_for_ms / 1000.0
    app = TinyServer(args.name, unhealthy_until, split_writes=args.split_writes)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    server = await asyncio.start_server(
        app.serve_connection, args.host, args.port, limit=MAX_HEADER_BYTES, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print(f"tiny-server {args.name} listening on {port}", flush=True)
    async with server:
        await stopping.wait()
        print(f"tiny-server {args.name} stopping", flush=True)
        server.close()
        for writer in list(app.connections):
            writer.close()
        if app.handlers:
            # Closed connections end their handlers; wait for them (bounded) so
            # that none is cancelled mid-request when the loop shuts down.
            await asyncio.wait(list(app.handlers), timeout=2.0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A tiny HTTP service for scenario examples.")
    parser.add_argument(
        "--port", type=int, required=True, help="port to listen on; 0 picks a free one"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="tiny")
    parser.add_argument(
        "--unhealthy-for-ms",
        type=float,
        default=0.0,
        help="answer /health with 503 for this long after start",
    )
    parser.add_argument(
        "--unhealthy-until",
        type=float,
        default=None,
        help="answer /health with 503 until this moment of the monotonic clock (seconds)",
    )
    parser.add_argument(
        "--split-writes",
        action="store_true",
        help="write head and body separately with Nagle on, as Python's http.server does",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
