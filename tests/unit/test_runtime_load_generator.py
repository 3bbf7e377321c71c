"""The load generator's scheduling, bookkeeping and failure reasons, against real local
servers, sockets and processes (each answers at once or never: no sleeps to sync on)."""

from __future__ import annotations

import select
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from test_coordinator.runtime.load import (
    CommandTarget,
    LoadGenerator,
    LoadSample,
    TcpTarget,
)
from test_coordinator.runtime.load_http import HttpTarget, ProtocolError, ResponseParser
from test_coordinator.runtime.load_loop import RX_TIMESTAMPS, WRITE, Outcome, Reactor
from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.runtime.probes import ProbeResult
from test_coordinator.scenario.steps import LoadSpec


class Behaviour:
    """What the test server does; a test changes it while the load runs."""

    def __init__(self) -> None:
        self.status = 200
        self.delay_s = 0.0
        self.close_after_answer = False
        self.say_close = False
        self.chunked = False
        self.hold = threading.Event()
        self.hold.set()
        self.requests = 0


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in separate writes

        def do_GET(self) -> None:
            behaviour.requests += 1
            behaviour.hold.wait(10.0)
            if behaviour.delay_s:
                time.sleep(behaviour.delay_s)  # the server being slow, not a sync
            self.send_response(behaviour.status)
            if behaviour.say_close:
                self.send_header("Connection", "close")
            body = self.command != "HEAD"
            if behaviour.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"3\r\nabc\r\n0\r\n\r\n" if body else b"")
            else:
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if body else b"")
            if behaviour.close_after_answer:  # without saying so: a keep-alive timeout
                self.wfile.flush()
                self.close_connection = True

        do_HEAD = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's 5 would drop connects on a busy machine

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (closed) before the answer: expected here


@pytest.fixture
def http_server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    server = QuietServer(("127.0.0.1", 0), _handler(behaviour))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", behaviour
    finally:
        behaviour.hold.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts but nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=512) as listener:
        yield listener.getsockname()[1]


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """A port whose server reads the request, then resets the connection (RST)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join()


def at_least(generator: LoadGenerator, count: int) -> Callable[[], Awaitable[ProbeResult]]:
    async def check() -> ProbeResult:
        n = len(generator.samples())
        return ProbeResult(n >= count, n, f"{n} samples", 0.0)

    return check


async def run_until(generator: LoadGenerator, count: int, deadline_s: float = 5.0) -> None:
    generator.start()
    try:
        await wait_until(at_least(generator, count), deadline_s=deadline_s, interval_s=0.005)
    finally:
        await generator.stop()


def reasons(generator: LoadGenerator) -> set[str]:
    return {s.reason for s in generator.samples()}


async def test_a_slow_server_does_not_slow_the_sending(
    http_server: tuple[str, Behaviour],
) -> None:
    """Open loop: with 40 ms answers at 200/s, the sends keep the rate (a closed loop
    would manage one per answer and connection)."""
    url, behaviour = http_server
    behaviour.delay_s = 0.040
    generator = LoadGenerator(url, 200, timeout_s=1.0)
    await run_until(generator, 60)

    samples = generator.samples()
    rate = (len(samples) - 1) / ((samples[-1].at_ms - samples[0].at_ms) / 1000.0)
    assert 160 <= rate <= 240
    assert all(s.ok and s.status == 200 and s.latency_ms >= 40.0 for s in samples)
    assert {s.reason for s in samples} == {""}


async def test_bounded_in_flight_records_what_it_could_not_send(silent_port: int) -> None:
    """A server that never answers fills max_in_flight; further sends are failures, not a queue."""
    url = f"http://127.0.0.1:{silent_port}/"
    generator = LoadGenerator(url, 500, timeout_s=0.1, max_in_flight=3)
    generator.start()
    try:
        await wait_until(at_least(generator, 10), deadline_s=3.0, interval_s=0.005)
    finally:
        started = time.monotonic()
        await generator.stop()
        stop_took = time.monotonic() - started

    errors = {(s.reason, s.error) for s in generator.samples()}
    assert ("not sent", "not sent: 3 requests in flight") in errors
    assert ("timeout", "no answer within 0.1 s") in errors
    assert not any(s.ok for s in generator.samples())
    assert all(s.latency_ms >= 100.0 for s in generator.samples() if s.reason == "timeout")
    assert stop_took < 0.5
    summary = generator.summary()
    assert set(summary.reasons) == {"not sent", "timeout"}
    assert sum(summary.reasons.values()) == summary.errors == summary.count


async def test_error_statuses_count_as_errors(http_server: tuple[str, Behaviour]) -> None:
    url, behaviour = http_server
    behaviour.status = 503
    generator = LoadGenerator(url, 500)
    await run_until(generator, 5)

    summary = generator.summary()
    assert summary.count == summary.errors > 0
    assert summary.error_rate == 1.0
    assert summary.reasons == {"status 503": summary.count}
    assert {(s.error, s.status) for s in generator.samples()} == {("status 503", 503)}


async def test_a_refused_connection_says_so() -> None:
    generator = LoadGenerator(f"http://127.0.0.1:{free_port()}/", 500)
    await run_until(generator, 5)

    assert {(s.reason, s.error) for s in generator.samples()} == {
        ("refused", "cannot connect: Connection refused")
    }


async def test_a_reset_connection_says_so(resetting_port: int) -> None:
    generator = LoadGenerator(f"http://127.0.0.1:{resetting_port}/", 200)
    await run_until(generator, 5)

    assert reasons(generator) == {"reset"}
    assert all(not s.ok and s.status is None for s in generator.samples())


async def test_a_timed_out_request_does_not_hold_back_the_later_ones(
    http_server: tuple[str, Behaviour],
) -> None:
    """Requests held by the server time out; once it answers again, every request
    succeeds: a timeout closes its connection, and no pool slot is left behind."""
    url, behaviour = http_server
    behaviour.hold.clear()
    generator = LoadGenerator(url, 200, timeout_s=0.05, max_in_flight=4)
    generator.start()
    try:
        await wait_until(at_least(generator, 20), deadline_s=3.0, interval_s=0.005)
        behaviour.hold.set()
        released_ms = (time.monotonic() - (generator.origin_s or 0.0)) * 1000.0
        await wait_until(
            lambda: _done(generator.summary(start_ms=released_ms + 500.0).count >= 50),
            deadline_s=5.0,
            interval_s=0.005,
        )
    finally:
        await generator.stop()

    held = generator.summary(end_ms=released_ms - 100.0)
    after = generator.summary(start_ms=released_ms + 500.0)
    assert held.errors == held.count > 0
    assert set(held.reasons) <= {"timeout", "not sent"}
    assert (after.count >= 50, after.errors) == (True, 0)


async def test_connections_the_server_closes_are_not_counted_as_errors(
    http_server: tuple[str, Behaviour],
) -> None:
    """A server that closes each connection after its answer (saying so or not) costs
    reconnects, never failed requests."""
    url, behaviour = http_server
    behaviour.close_after_answer = True
    quiet = LoadGenerator(url, 200)
    await run_until(quiet, 40)
    behaviour.say_close = True
    told = LoadGenerator(url, 200)
    await run_until(told, 40)

    assert quiet.summary().errors == told.summary().errors == 0


async def test_chunked_and_head_answers(http_server: tuple[str, Behaviour]) -> None:
    url, behaviour = http_server
    behaviour.chunked = True
    get = LoadGenerator(url, 300)
    await run_until(get, 20)
    head = LoadGenerator(url, 300, method="HEAD")
    await run_until(head, 20)

    assert get.summary().errors == head.summary().errors == 0
    assert behaviour.requests >= 40


async def test_times_are_relative_to_the_origin(http_server: tuple[str, Behaviour]) -> None:
    """at_ms counts from the given origin, so samples line up with the run's timeline."""
    url, _ = http_server
    origin = time.monotonic() - 10.0
    generator = LoadGenerator(url, 500, origin_s=origin)
    await run_until(generator, 3)

    first: LoadSample = generator.samples()[0]
    assert 10_000.0 <= first.at_ms < 11_000.0
    assert generator.origin_s == origin


async def test_stops_by_itself_after_max_duration(http_server: tuple[str, Behaviour]) -> None:
    url, _ = http_server
    generator = LoadGenerator(url, 1000, max_duration_s=0.02)
    generator.start()
    await wait_until(lambda: _done(not generator.running), deadline_s=2.0, interval_s=0.005)
    await generator.stop()

    assert 10 <= len(generator.samples()) <= 21


async def _done(flag: bool) -> ProbeResult:
    return ProbeResult(flag, flag, "", 0.0)


async def test_a_stopped_generator_cannot_restart() -> None:
    generator = LoadGenerator("http://svc/", 10)
    await generator.stop()

    with pytest.raises(RuntimeError, match="cannot start again"):
        generator.start()


@pytest.mark.parametrize("rate", [0, -5, 1e6])
def test_rate_out_of_range_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        LoadGenerator("http://svc/", rate)


def test_only_http_urls_make_an_http_load() -> None:
    with pytest.raises(ValueError, match="http"):
        LoadGenerator("ftp://svc/", 10)


# -- a deadline is judged by when the answer arrived, not by when it is read


def _sent_and_answered(
    url: str, timeout_s: float, outcomes: list[Outcome]
) -> tuple[Reactor, HttpTarget, Any, float]:
    """One request sent by hand; returns once its answer waits, unread, in the socket."""
    reactor, target = Reactor(time.monotonic), HttpTarget(url)
    started = time.monotonic()
    attempt: Any = target.begin(reactor, started, started + timeout_s, outcomes.append)
    while attempt._conn is None:  # connect, then send (writes only: nothing is read)
        for key, mask in reactor.selector.select(5.0):
            if mask & WRITE:
                key.data(mask)
    sock = attempt._conn.sock
    waiting = b""
    while not waiting.endswith(b"\r\n\r\nok"):  # the whole answer (it comes in 2 writes)
        readable, _, _ = select.select([sock], [], [], 5.0)
        assert readable
        waiting = sock.recv(4096, socket.MSG_PEEK)
    assert not outcomes
    return reactor, target, attempt, started


@pytest.mark.skipif(not RX_TIMESTAMPS, reason="needs the kernel's receive timestamps")
@pytest.mark.parametrize(("timeout_s", "ok"), [(0.5, True), (1e-9, False)])
def test_an_answer_is_in_time_if_it_arrived_in_time_however_late_it_is_read(
    http_server: tuple[str, Behaviour], timeout_s: float, ok: bool
) -> None:
    url, _ = http_server
    outcomes: list[Outcome] = []
    reactor, target, attempt, started = _sent_and_answered(url, timeout_s, outcomes)
    try:
        attempt.expire(started + 10.0)  # the loop looks (very) late
    finally:
        target.close(reactor)
        reactor.close()

    [outcome] = outcomes
    assert outcome.ok is ok
    assert outcome.reason == ("" if ok else "timeout")
    if ok:
        assert outcome.done_at - started < 0.1


# -- TCP connects


async def test_tcp_connects_succeed_while_something_listens(silent_port: int) -> None:
    generator = LoadGenerator(TcpTarget("127.0.0.1", silent_port), 200)
    await run_until(generator, 10)

    assert generator.description == f"tcp://127.0.0.1:{silent_port}"
    assert generator.summary().errors == 0
    assert all(s.ok and s.status is None for s in generator.samples())


async def test_tcp_connects_to_a_closed_port_are_refused() -> None:
    generator = LoadGenerator(TcpTarget("127.0.0.1", free_port()), 200)
    await run_until(generator, 10)

    assert {(s.reason, s.error) for s in generator.samples()} == {
        ("refused", "cannot connect: Connection refused")
    }


# -- commands


async def test_a_command_that_exits_0_succeeds() -> None:
    true = shutil.which("true") or "/bin/true"
    generator = LoadGenerator(CommandTarget([true]), 50, timeout_s=2.0)
    await run_until(generator, 5)

    assert generator.summary().errors == 0
    assert all(s.ok and s.latency_ms > 0 for s in generator.samples())


async def test_a_failing_command_records_its_exit_status_and_stderr() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('no stock\\n'); sys.exit(3)"]
    generator = LoadGenerator(CommandTarget(argv), 20, timeout_s=5.0)
    await run_until(generator, 3, deadline_s=10.0)

    assert reasons(generator) == {"exit 3"}
    assert all("exit status 3; stderr: no stock" in s.error for s in generator.samples())
    assert generator.summary().reasons == {"exit 3": len(generator.samples())}


async def test_a_command_past_its_timeout_is_killed() -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    generator = LoadGenerator(CommandTarget(argv), 20, timeout_s=0.2)
    await run_until(generator, 3, deadline_s=10.0)

    assert reasons(generator) == {"timeout"}
    assert all("still running after 0.2 s; killed" in s.error for s in generator.samples())


async def test_a_command_that_cannot_run() -> None:
    generator = LoadGenerator(CommandTarget(["/nonexistent/command"]), 50)
    await run_until(generator, 3)

    assert reasons(generator) == {"other"}
    assert all("cannot run" in s.error for s in generator.samples())


# -- the HTTP answer's framing


@pytest.mark.parametrize(
    ("chunks", "keep_alive"),
    [
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", b"lo"], True),
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", b"c\r\n0\r\n\r\n"],
            True,
        ),
        ([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"], True),
        ([b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"], False),
        ([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"], False),
    ],
)
def test_the_parser_finds_the_end_of_an_answer(chunks: list[bytes], keep_alive: bool) -> None:
    parser = ResponseParser()
    for chunk in chunks[:-1]:
        parser.feed(chunk)
        assert not parser.complete
    parser.feed(chunks[-1])

    assert parser.complete
    assert parser.keep_alive is keep_alive
    assert not parser.leftover


def test_an_answer_without_a_length_ends_when_the_connection_closes() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nsome body")

    assert not parser.complete
    assert parser.end_of_stream()
    assert not parser.keep_alive


def test_a_head_answer_has_no_body() -> None:
    parser = ResponseParser(head_request=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")

    assert parser.complete and parser.status == 200


def test_not_http_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not an HTTP response"):
        ResponseParser().feed(b"SSH-2.0-OpenSSH\r\n\r\n")


# -- the scenario's load spec


def test_a_load_names_exactly_one_kind() -> None:
    assert LoadSpec.model_validate({"url": "http://x/", "rate": 5}).describe() == "http://x/"
    tcp = LoadSpec.model_validate({"tcp": {"port": 80}, "rate": 5})
    assert tcp.describe() == "tcp://127.0.0.1:80"
    command = LoadSpec.model_validate({"command": {"argv": ["true", "x"]}, "rate": 5})
    assert command.describe() == "command: true x"
    for bad in (
        {"rate": 5},
        {"url": "http://x/", "tcp": {"port": 80}, "rate": 5},
        {"tcp": {"port": 80}, "method": "POST", "rate": 5},
        {"command": {"argv": []}, "rate": 5},
    ):
        with pytest.raises(ValidationError):
            LoadSpec.model_validate(bad)
