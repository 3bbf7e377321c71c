"""The netfault proxy in process, on real sockets on 127.0.0.1: each fault's effect as a
client sees it, measured against a local server reached directly and through the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from support.polling import eventually
from test_coordinator.netfault import proxy as proxy_module
from test_coordinator.netfault.link import WRITE_HIGH_WATER
from test_coordinator.netfault.model import (
    Bandwidth,
    Blackhole,
    ConnectionLoss,
    Direction,
    Latency,
    LossAction,
    Partition,
    Pulse,
    Refuse,
    Reset,
    SlowClose,
)
from test_coordinator.netfault.pipe import QUEUE_LIMIT
from test_coordinator.netfault.proxy import NetfaultProxy

SILENCE_S = 0.3
"""How long a test waits to conclude that nothing arrives (the fault's whole point)."""

READ_SIZE = 256 * 1024
"""The most asyncio reads from a socket at once: the proxy may hold one more read."""


class Upstream:
    """The server behind the proxy. ``mode``: ``echo`` every chunk; ``answer_at_eof``: read
    to the end of stream, then say how many bytes came; ``bulk``: send ``bulk`` and close;
    ``silent``: only record. Records what it received, when ends of stream came, and errors."""

    def __init__(self) -> None:
        self.mode = "echo"
        self.bulk = b""
        self.received = bytearray()
        self.accepted = 0
        self.eof_at: list[float] = []
        self.errors: list[BaseException] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        await self._server.wait_closed()

    def push(self, data: bytes) -> None:
        """Send ``data`` to every connected client, unasked."""
        for writer in self.writers:
            if not writer.is_closing():
                writer.write(data)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        try:
            if self.mode == "bulk":
                for start in range(0, len(self.bulk), 1 << 16):
                    writer.write(self.bulk[start : start + (1 << 16)])
                    await writer.drain()
                return
            count = 0
            while data := await reader.read(1 << 16):
                count += len(data)
                self.received += data
                if self.mode == "echo":
                    writer.write(data)
            self.eof_at.append(time.monotonic())
            if self.mode == "answer_at_eof":
                writer.write(b"got %d bytes" % count)
                await writer.drain()
        except ConnectionError as exc:
            self.errors.append(exc)
        finally:
            writer.close()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def round_trip(self, payload: bytes = b"ping") -> float:
        started = time.perf_counter()
        self.writer.write(payload)
        assert await asyncio.wait_for(self.reader.readexactly(len(payload)), 5.0) == payload
        return time.perf_counter() - started

    async def median_round_trip(self, count: int = 40) -> float:
        samples = sorted([await self.round_trip() for _ in range(count)])
        return samples[count // 2]

    async def nothing_arrives(self) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1), SILENCE_S)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {data!r}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[NetfaultProxy]:
    running = NetfaultProxy(("127.0.0.1", 0), ("127.0.0.1", upstream.port))
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[int], asyncio.Future[Client]]]:
    """Open a client on a port; every client is closed after the test."""
    opened: list[Client] = []

    async def open_client(port: int) -> Client:
        client = await Client.connect(port)
        opened.append(client)
        return client

    yield open_client  # type: ignore[misc]
    for client in opened:
        await client.close()


def ms(seconds: float) -> float:
    return seconds * 1000


# --- pass-through --------------------------------------------------------------------


async def test_with_no_fault_bytes_pass_untouched_and_fast(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    direct = await connect(upstream.port)
    through = await connect(proxy.port)
    payload = random.Random(1).randbytes(300_000)

    through.writer.write(payload)
    echoed = await asyncio.wait_for(through.reader.readexactly(len(payload)), 5.0)

    assert echoed == payload
    added = await through.median_round_trip() - await direct.median_round_trip()
    assert ms(added) < 1.0


async def test_half_close_the_client_shuts_down_writing_and_still_gets_the_answer(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    upstream.mode = "answer_at_eof"
    client = await connect(proxy.port)

    client.writer.write(b"abc" * 1000)
    client.writer.write_eof()
    answer = await asyncio.wait_for(client.reader.read(), 5.0)

    assert answer == b"got 3000 bytes"
    await eventually(lambda: proxy.stats()["connections_open"] == 0, what="connection closed")


async def test_a_thousand_concurrent_connections(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    clients = await asyncio.gather(*(connect(proxy.port) for _ in range(1000)))
    await eventually(lambda: proxy.stats()["connections_open"] == 1000, what="1000 open")

    times = await asyncio.gather(*(c.round_trip(b"%d" % i) for i, c in enumerate(clients)))

    assert len(times) == 1000
    assert upstream.accepted == 1000


async def test_a_slow_reader_does_not_make_the_proxy_buffer_without_bound(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    upstream.mode = "bulk"
    upstream.bulk = bytes(range(256)) * (64 * 4096)  # 64 MiB, more than every socket buffer
    client = await connect(proxy.port)  # and does not read yet
    await eventually(lambda: bool(upstream.writers), what="upstream connected")
    sender = upstream.writers[0].transport

    await eventually(lambda: sender.get_write_buffer_size() > 0, what="the upstream blocked")
    buffered = proxy.stats()["buffered_bytes"]

    assert isinstance(buffered, int)
    assert buffered <= WRITE_HIGH_WATER + READ_SIZE
    digest = hashlib.sha256()
    total = 0
    while chunk := await asyncio.wait_for(client.reader.read(1 << 20), 10.0):
        digest.update(chunk)
        total += len(chunk)
    assert total == len(upstream.bulk)
    assert digest.digest() == hashlib.sha256(upstream.bulk).digest()


async def test_with_latency_the_delay_queue_is_bounded_too(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    upstream.mode = "bulk"
    upstream.bulk = bytes(64 << 20)
    proxy.set_fault("slow", Latency(ms=30))
    client = await connect(proxy.port)
    await eventually(lambda: bool(upstream.writers), what="upstream connected")
    sender = upstream.writers[0].transport

    await eventually(lambda: sender.get_write_buffer_size() > 0, what="the upstream blocked")
    buffered = proxy.stats()["buffered_bytes"]

    assert isinstance(buffered, int)
    # the queue's limit and one read over it, moving into a full write buffer
    assert buffered <= QUEUE_LIMIT + WRITE_HIGH_WATER + 2 * READ_SIZE
    proxy.clear_fault("slow")
    total = 0
    while chunk := await asyncio.wait_for(client.reader.read(1 << 20), 10.0):
        total += len(chunk)
    assert total == len(upstream.bulk)


# --- latency and bandwidth ---------------------------------------------------------------


async def test_latency_adds_its_delay_to_a_round_trip_and_clear_takes_it_away(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    direct = await connect(upstream.port)
    through = await connect(proxy.port)
    baseline = await direct.median_round_trip()

    proxy.set_fault("lat", Latency(ms=20))
    delayed = await through.median_round_trip(20) - baseline
    proxy.set_fault("lat", Latency(ms=20, direction=Direction.BOTH))
    delayed_both_ways = await through.median_round_trip(20) - baseline
    stats = proxy.clear_fault("lat")
    after_clear = await through.median_round_trip() - await direct.median_round_trip()

    assert 19.9 <= ms(delayed) <= 22.0
    assert 39.9 <= ms(delayed_both_ways) <= 43.0
    assert ms(after_clear) < 1.0
    assert stats is not None
    assert (stats.connections, stats.bytes_delayed) == (1, 20 * 2 * len(b"ping"))


async def test_latency_does_not_add_up_over_chunks_in_flight_and_keeps_their_order(
    proxy: NetfaultProxy, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    proxy.set_fault("lat", Latency(ms=50, jitter_ms=20, seed=7))
    client = await connect(proxy.port)
    messages = [b"<%04d>" % i for i in range(100)]

    started = time.perf_counter()
    for message in messages:  # 100 writes, each a chunk of its own for the proxy
        client.writer.write(message)
        await client.writer.drain()
        await asyncio.sleep(0)
    echoed = await asyncio.wait_for(client.reader.readexactly(600), 5.0)
    elapsed = time.perf_counter() - started

    assert echoed == b"".join(messages)
    assert ms(elapsed) < 50 + 20 + 30  # one latency (and its jitter), not one per chunk


async def test_clearing_latency_releases_what_it_holds_at_once(
    proxy: NetfaultProxy, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    proxy.set_fault("lat", Latency(ms=10_000))
    client = await connect(proxy.port)
    client.writer.write(b"held")
    await eventually(lambda: proxy.stats()["buffered_bytes"] == 4, what="reply queued")

    proxy.clear_fault("lat")

    assert await asyncio.wait_for(client.reader.readexactly(4), 1.0) == b"held"


async def test_bandwidth_limits_the_transfer_rate_each_way(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    upstream.mode = "silent"
    proxy.set_fault("thin", Bandwidth(bytes_per_s=1_000_000, direction=Direction.UPSTREAM))
    client = await connect(proxy.port)

    started = time.perf_counter()
    client.writer.write(bytes(400_000))
    await eventually(lambda: len(upstream.received) == 400_000, what="all received")
    elapsed = time.perf_counter() - started

    assert 0.36 <= elapsed <= 0.6  # 400 kB at 1 MB/s, less a 16 kB burst
    stats = proxy.clear_fault("thin")
    assert stats is not None
    assert stats.bytes_delayed >= 400_000 - 2 * 16384


async def test_bandwidth_downstream_and_no_longer_after_clear(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    upstream.mode = "bulk"
    upstream.bulk = bytes(300_000)
    proxy.set_fault("thin", Bandwidth(bytes_per_s=1_000_000))

    started = time.perf_counter()
    client = await connect(proxy.port)
    await asyncio.wait_for(client.reader.readexactly(300_000), 5.0)
    limited = time.perf_counter() - started
    proxy.clear_fault("thin")
    started = time.perf_counter()
    again = await connect(proxy.port)
    await asyncio.wait_for(again.reader.readexactly(300_000), 5.0)
    unlimited = time.perf_counter() - started

    assert 0.26 <= limited  # 300 kB at 1 MB/s: at least 0.3 s, less the first burst
    assert unlimited < limited / 3  # relative: a busy machine slows both


# --- connection faults -------------------------------------------------------------------


async def test_reset_resets_open_and_new_connections(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    before = await connect(proxy.port)
    await before.round_trip()

    proxy.set_fault("rst", Reset())
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(before.reader.read(1), 5.0)
    after = await connect(proxy.port)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(after.reader.read(1), 5.0)

    await eventually(lambda: len(upstream.errors) == 1, what="the upstream reset too")
    stats = proxy.clear_fault("rst")
    assert stats is not None
    assert (stats.connections, stats.resets) == (2, 2)
    assert await (await connect(proxy.port)).round_trip() < 1.0


async def test_refuse_makes_the_kernel_refuse_new_connections_while_open_ones_go_on(
    proxy: NetfaultProxy, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    open_one = await connect(proxy.port)

    proxy.set_fault("no", Refuse())
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy.port)
    await open_one.round_trip()
    stats = proxy.clear_fault("no")
    await proxy.listening_settled(5.0)

    assert proxy.state()["listening"] is True
    await (await connect(proxy.port)).round_trip()
    assert stats is not None
    assert stats.connections == 0  # the kernel refused the connect: the proxy never saw it
    assert stats.refusing_ms >= 1  # ... but it did keep the port from listening


async def test_blackhole_swallows_bytes_and_keeps_the_connection_open(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    client = await connect(proxy.port)
    await client.round_trip()

    proxy.set_fault("hole", Blackhole())
    client.writer.write(b"lost")
    assert await client.nothing_arrives()
    assert bytes(upstream.received) == b"ping"
    stats = proxy.clear_fault("hole")

    assert not client.writer.is_closing()
    assert await client.round_trip(b"after") < 1.0  # the same connection works again
    assert stats is not None
    assert (stats.connections, stats.bytes_dropped) == (1, 4)


async def test_blackhole_downstream_lets_requests_reach_the_server(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    proxy.set_fault("hole", Blackhole(direction=Direction.DOWNSTREAM))
    client = await connect(proxy.port)

    client.writer.write(b"request")
    await eventually(lambda: bytes(upstream.received) == b"request", what="request received")
    assert await client.nothing_arrives()


async def test_slow_close_delays_the_end_of_stream_not_the_data(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    upstream.mode = "answer_at_eof"
    proxy.set_fault("slow", SlowClose(delay_ms=300))
    client = await connect(proxy.port)

    sent_eof = time.perf_counter()
    client.writer.write_eof()
    await eventually(lambda: bool(upstream.eof_at), what="the upstream saw the end")
    upstream_saw_eof = time.perf_counter()
    answer = await asyncio.wait_for(client.reader.readexactly(11), 5.0)
    answered = time.perf_counter()
    assert await asyncio.wait_for(client.reader.read(), 5.0) == b""
    client_saw_eof = time.perf_counter()

    assert answer == b"got 0 bytes"
    assert 0.29 <= upstream_saw_eof - sent_eof <= 0.45
    assert answered - upstream_saw_eof < 0.05  # the answer itself is not held
    assert 0.29 <= client_saw_eof - answered <= 0.45
    stats = proxy.clear_fault("slow")
    assert stats is not None
    assert (stats.connections, stats.eofs_delayed) == (1, 2)


async def lost_or_kept(port: int) -> str:
    client = await Client.connect(port)
    try:
        await client.round_trip()
        return "kept"
    except ConnectionResetError:
        return "reset"
    except asyncio.IncompleteReadError:
        return "closed"
    finally:
        await client.close()


async def test_connection_loss_loses_new_connections_with_a_seeded_probability(
    proxy: NetfaultProxy,
) -> None:
    proxy.set_fault("loss", ConnectionLoss(probability=0.5, seed=42))
    outcomes = [await lost_or_kept(proxy.port) for _ in range(20)]
    dice = random.Random(42)
    expected = ["reset" if dice.random() < 0.5 else "kept" for _ in range(20)]

    assert outcomes == expected
    stats = proxy.clear_fault("loss")
    assert stats is not None
    assert stats.resets == stats.connections == expected.count("reset")


async def test_connection_loss_can_close_instead_and_never_or_always(
    proxy: NetfaultProxy,
) -> None:
    proxy.set_fault("loss", ConnectionLoss(probability=1.0, how=LossAction.CLOSE))
    assert [await lost_or_kept(proxy.port) for _ in range(3)] == ["closed"] * 3
    proxy.set_fault("loss", ConnectionLoss(probability=0.0))
    assert [await lost_or_kept(proxy.port) for _ in range(3)] == ["kept"] * 3


# --- partition ---------------------------------------------------------------------------


async def test_partition_both_ways_stalls_open_and_new_connections_and_heals_without_loss(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    open_one = await connect(proxy.port)
    await open_one.round_trip()

    proxy.set_fault("cut", Partition())
    open_one.writer.write(b"during")
    new_one = await connect(proxy.port)  # accepted: a partition answers nothing, refuses nothing
    new_one.writer.write(b"new")
    upstream.push(b"pushed")
    assert await open_one.nothing_arrives()
    assert await new_one.nothing_arrives()
    assert bytes(upstream.received) == b"ping"
    assert upstream.accepted == 1
    stats = proxy.clear_fault("cut")

    assert await asyncio.wait_for(open_one.reader.readexactly(12), 5.0) == b"pushedduring"
    assert await asyncio.wait_for(new_one.reader.readexactly(3), 5.0) == b"new"
    assert stats is not None
    assert stats.connections == 2


async def test_a_request_half_closed_during_a_partition_is_held_and_answered_after_it(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    """A client that sends its request and shuts down its writing waits for the answer: the
    partition keeps it in silence (no end of stream comes back), and the request, then its
    end of stream, reach the server when the partition heals."""
    upstream.mode = "answer_at_eof"
    proxy.set_fault("cut", Partition())
    client = await connect(proxy.port)
    client.writer.write(b"request")
    client.writer.write_eof()

    assert await client.nothing_arrives()
    assert upstream.accepted == 0
    stats = proxy.clear_fault("cut")

    assert await asyncio.wait_for(client.reader.read(), 5.0) == b"got 7 bytes"
    assert bytes(upstream.received) == b"request"
    assert stats is not None  # what it held is counted: the bytes and the end of stream
    assert (stats.connections, stats.bytes_delayed, stats.eofs_delayed) == (1, 7, 1)


async def test_past_a_bound_the_oldest_ended_connections_a_partition_holds_are_let_go(
    proxy: NetfaultProxy,
    upstream: Upstream,
    connect: Callable[[int], asyncio.Future[Client]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client retrying through a long partition opens connection after connection and
    closes each: from the proxy that looks like a half-close, so they are kept, but only
    up to a bound, the oldest let go (else the proxy runs out of descriptors)."""
    monkeypatch.setattr(proxy_module, "HELD_ENDED_MAX", 3)
    proxy.set_fault("cut", Partition())
    for attempt in range(8):
        gave_up = await connect(proxy.port)
        gave_up.writer.write(b"%d" % attempt)
        await gave_up.close()
    still_waiting = await connect(proxy.port)
    still_waiting.writer.write(b"new")

    await eventually(lambda: proxy.stats()["connections_held"] == 4, what="3 ended and 1 held")
    assert proxy.stats()["connections_held_ended"] == 3
    stats = proxy.clear_fault("cut")
    assert await asyncio.wait_for(still_waiting.reader.readexactly(3), 5.0) == b"new"
    await eventually(lambda: upstream.accepted == 4, what="the 3 kept and the waiting one")
    assert sorted(bytes(upstream.received).replace(b"new", b"")) == sorted(b"567")
    assert stats is not None and stats.connections == 9


async def test_partition_upstream_only_lets_the_server_still_talk(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    client = await connect(proxy.port)
    await client.round_trip()

    proxy.set_fault("cut", Partition(direction=Direction.UPSTREAM))
    client.writer.write(b"request")
    upstream.push(b"pushed")

    assert await asyncio.wait_for(client.reader.readexactly(6), 5.0) == b"pushed"
    assert await client.nothing_arrives()
    assert bytes(upstream.received) == b"ping"
    proxy.clear_fault("cut")
    assert await asyncio.wait_for(client.reader.readexactly(7), 5.0) == b"request"


async def test_partition_downstream_only_lets_requests_through_but_no_answer(
    proxy: NetfaultProxy, upstream: Upstream, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    client = await connect(proxy.port)
    await client.round_trip()

    proxy.set_fault("cut", Partition(direction=Direction.DOWNSTREAM))
    client.writer.write(b"request")

    await eventually(lambda: bytes(upstream.received) == b"pingrequest", what="request in")
    assert await client.nothing_arrives()
    proxy.clear_fault("cut")
    assert await asyncio.wait_for(client.reader.readexactly(7), 5.0) == b"request"


# --- the fault table ---------------------------------------------------------------------


async def test_a_fault_that_touched_nothing_reads_zero(
    proxy: NetfaultProxy, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    proxy.set_fault("idle", Blackhole(direction=Direction.UPSTREAM))
    proxy.set_fault("zero", Latency(ms=0))
    stats = proxy.stats()["faults"]
    assert isinstance(stats, dict)
    zeros = {
        "connections": 0,
        "bytes_delayed": 0,
        "bytes_dropped": 0,
        "eofs_delayed": 0,
        "resets": 0,
        "closes": 0,
        "refusing_ms": 0,
    }
    assert stats == {"idle": zeros, "zero": zeros}
    proxy.clear_fault("idle")
    await (await connect(proxy.port)).round_trip()
    assert proxy.stats()["faults"] == {"zero": zeros}


async def test_setting_an_id_again_replaces_the_fault_and_its_stats(proxy: NetfaultProxy) -> None:
    assert proxy.set_fault("f", Reset()) is False
    assert proxy.set_fault("f", Latency(ms=5)) is True
    assert [entry.fault for entry in proxy.faults] == [Latency(ms=5)]
    assert proxy.clear_fault("f") is not None
    assert proxy.clear_fault("f") is None
    assert proxy.clear_all() == []


async def test_pulse_switches_the_fault_on_and_off_until_cleared(
    proxy: NetfaultProxy, connect: Callable[[int], asyncio.Future[Client]]
) -> None:
    proxy.set_fault("flap", Reset(), Pulse(on_ms=50, off_ms=60_000))
    assert proxy.state()["faults"][0]["active"] is True  # type: ignore[index]
    with pytest.raises(ConnectionResetError):
        await (await connect(proxy.port)).round_trip()

    await eventually(lambda: proxy.faults[0].active is False, what="the pulse rests")
    await (await connect(proxy.port)).round_trip()
    proxy.set_fault("flap", Reset(), Pulse(on_ms=20, off_ms=20))
    await eventually(lambda: proxy.faults[0].cycles >= 3, what="three cycles")
    proxy.clear_fault("flap")
    await (await connect(proxy.port)).round_trip()


async def test_an_unreachable_upstream_resets_the_client() -> None:
    from test_coordinator.runtime.ports_alloc import free_port

    running = NetfaultProxy(("127.0.0.1", 0), ("127.0.0.1", free_port()))
    await running.start()
    try:
        client = await Client.connect(running.port)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(client.reader.read(1), 5.0)
        await client.close()
        assert running.stats()["upstream_failures"] == 1
    finally:
        await running.close()


# --- the pass-through path, on both event loops ------------------------------------------
# The proxy runs on uvloop as a process; these run the same scenarios on it and on asyncio's
# own loop, each in a loop of its own.

Scenario = Callable[[NetfaultProxy, Upstream], Awaitable[None]]


def run_on(loop_name: str, scenario: Scenario) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop_name == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop

    async def main() -> None:
        upstream = Upstream()
        await upstream.start()
        running = NetfaultProxy(("127.0.0.1", 0), ("127.0.0.1", upstream.port))
        await running.start()
        try:
            await scenario(running, upstream)
        finally:
            await running.close()
            await upstream.close()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


async def read_into(client: Client, into: bytearray) -> None:
    while chunk := await client.reader.read(1 << 20):
        into += chunk


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_pass_through_bytes_both_ways_unchanged_behind_a_slow_reader_then_half_close(
    loop_name: str,
) -> None:
    payload = random.Random(2).randbytes(8 << 20)  # more than the socket buffers hold

    async def scenario(proxy: NetfaultProxy, upstream: Upstream) -> None:
        client = await Client.connect(proxy.port)
        client.writer.write(payload)  # echoed; the client does not read yet
        # The proxy's write to the client backs up: its transport keeps a part of the
        # shared read buffer, which the proxy must not read into until it is written.
        await eventually(lambda: proxy.stats()["buffered_bytes"] != 0, what="proxy backed up")
        echoed = bytearray()
        reading = asyncio.ensure_future(read_into(client, echoed))
        await eventually(lambda: len(echoed) == len(payload), what="everything echoed")
        client.writer.write_eof()  # the upstream echo server closes at the end of stream
        await asyncio.wait_for(reading, 10.0)  # ... and its FIN comes back

        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        assert hashlib.sha256(upstream.received).digest() == hashlib.sha256(payload).digest()
        assert len(upstream.eof_at) == 1
        await eventually(lambda: proxy.stats()["connections_open"] == 0, what="closed")
        stats = proxy.stats()
        assert (stats["bytes_upstream"], stats["bytes_downstream"]) == (len(payload),) * 2
        await client.close()

    run_on(loop_name, scenario)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_fault_set_mid_stream_on_a_pass_through_connection_acts_at_once(
    loop_name: str,
) -> None:
    payload = random.Random(3).randbytes(8 << 20)

    async def scenario(proxy: NetfaultProxy, upstream: Upstream) -> None:
        client = await Client.connect(proxy.port)
        client.writer.write(payload)  # echoed; the client does not read yet, so the echo
        # stalls in the proxy's write to the client and in the server's write to the proxy
        await eventually(lambda: proxy.stats()["buffered_bytes"] != 0, what="proxy backed up")
        await eventually(lambda: len(upstream.received) == len(payload), what="all sent up")

        proxy.set_fault("hole", Blackhole(direction=Direction.DOWNSTREAM))
        echoed = bytearray()
        reading = asyncio.ensure_future(read_into(client, echoed))

        def dropped() -> int:
            faults = proxy.stats()["faults"]
            assert isinstance(faults, dict)
            return int(faults["hole"]["bytes_dropped"])

        # every byte echoed either was on its way to the client before the fault or is
        # swallowed by it: none twice, none lost otherwise
        await eventually(lambda: len(echoed) + dropped() == len(payload), what="all accounted")
        assert 0 < len(echoed) and 0 < dropped()
        assert echoed == payload[: len(echoed)]
        reading.cancel()

        proxy.clear_fault("hole")
        assert await client.round_trip(b"after the hole") < 1.0
        proxy.set_fault("slow", Latency(ms=100))
        assert await client.round_trip() >= 0.100
        proxy.clear_fault("slow")
        assert await client.round_trip() < 0.050
        await client.close()

    run_on(loop_name, scenario)
