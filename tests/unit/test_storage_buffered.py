"""BufferedWriter: direct writes while the server answers, an ordered durable outbox
while it does not, and replay once it answers again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from support.polling import eventually
from test_coordinator.adapters.storage.buffered import BufferedWriter
from test_coordinator.adapters.storage.outbox import Outbox
from test_coordinator.adapters.storage.remote import ReconnectPolicy
from test_coordinator.adapters.storage.writes import PendingWrite, WriteKind
from test_coordinator.ports.availability import StorageRejected, StorageUnavailable

FAST = ReconnectPolicy(
    check_interval_s=0.01,
    first_backoff_s=0.005,
    max_backoff_s=0.02,
    connect_timeout_s=0.05,
    operation_timeout_s=0.05,
    replay_batch_size=3,
)


class FakeRemote:
    """A server in memory that can be down, hang, or refuse particular writes."""

    def __init__(self, *, up: bool = True) -> None:
        self.up = up
        self.hang = False
        self.applied: list[PendingWrite] = []
        self.pings = 0
        self.poison: set[str] = set()
        self.ping_error: Exception | None = None

    async def ping(self) -> None:
        self.pings += 1
        if self.ping_error is not None:
            raise self.ping_error
        await self._answer()

    async def apply(self, writes: Sequence[PendingWrite]) -> None:
        await self._answer()
        if any(w.payload["id"] in self.poison for w in writes):
            raise StorageRejected("refused")
        self.applied.extend(writes)

    @property
    def ids(self) -> list[str]:
        return [w.payload["id"] for w in self.applied]

    async def _answer(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if not self.up:
            raise StorageUnavailable("fake: connection refused")


def write(ident: str) -> PendingWrite:
    return PendingWrite(WriteKind.SAVE_RUN, {"id": ident})


async def outbox_count(path: Path) -> int:
    outbox = await Outbox.open(path)
    try:
        return await outbox.count()
    finally:
        await outbox.close()


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "outbox.db"


@pytest.fixture
def remote() -> FakeRemote:
    return FakeRemote()


@pytest.fixture
async def writer(remote: FakeRemote, outbox_path: Path) -> AsyncIterator[BufferedWriter]:
    buffered = BufferedWriter("fake", remote, outbox_path, FAST)
    yield buffered
    await buffered.close()


async def test_writes_go_straight_to_a_healthy_server(
    writer: BufferedWriter, remote: FakeRemote
) -> None:
    """Nothing is buffered while the server answers."""
    await writer.start()

    await writer.write(write("a"))

    assert remote.ids == ["a"]
    assert writer.backlog == 0
    assert writer.health().healthy


async def test_down_at_start_starts_degraded_and_buffers(
    writer: BufferedWriter, remote: FakeRemote, outbox_path: Path
) -> None:
    """Start succeeds with the server down; writes are kept, reads refused with a reason."""
    remote.up = False
    await writer.start()

    await writer.write(write("a"))
    await writer.write(write("b"))

    health = writer.health()
    assert (health.name, health.healthy) == ("fake", False)
    assert "connection refused" in health.detail
    assert "2 writes buffered" in health.detail
    assert remote.applied == []
    with pytest.raises(StorageUnavailable, match="fake is unavailable"):
        await writer.read(lambda: asyncio.sleep(0, result="never"))


async def test_buffered_writes_replay_in_order_when_the_server_returns(
    writer: BufferedWriter, remote: FakeRemote
) -> None:
    """Replay (in batches of 3 here) keeps the order; health recovers by itself."""
    remote.up = False
    await writer.start()
    for ident in "abcdefg":
        await writer.write(write(ident))

    remote.up = True
    await eventually(lambda: writer.health().healthy, timeout_s=2, what="recovered")

    assert list("abcdefg") == remote.ids
    assert writer.backlog == 0
    assert await writer.read(lambda: asyncio.sleep(0, result="ok")) == "ok"


async def test_writes_during_an_outage_queue_behind_earlier_ones(
    writer: BufferedWriter, remote: FakeRemote
) -> None:
    """A write that fails against a server thought healthy goes to the outbox, and so
    does every later one until the outbox is empty: no write overtakes another."""
    await writer.start()
    await writer.write(write("a"))
    remote.up = False

    await writer.write(write("b"))
    await writer.write(write("c"))
    assert not writer.health().healthy
    remote.up = True
    await eventually(lambda: writer.health().healthy, timeout_s=2, what="recovered")
    await writer.write(write("d"))

    assert remote.ids == ["a", "b", "c", "d"]


async def test_outbox_survives_a_restart(remote: FakeRemote, outbox_path: Path) -> None:
    """Writes buffered by one process are replayed by the next one at start."""
    remote.up = False
    first = BufferedWriter("fake", remote, outbox_path, FAST)
    await first.start()
    await first.write(write("a"))
    await first.write(write("b"))
    await first.close()
    assert await outbox_count(outbox_path) == 2

    remote.up = True
    second = BufferedWriter("fake", remote, outbox_path, FAST)
    try:
        await second.start()
        assert remote.ids == ["a", "b"]
        assert second.health().healthy
    finally:
        await second.close()
    assert await outbox_count(outbox_path) == 0


async def test_a_write_refused_during_replay_is_set_aside(
    writer: BufferedWriter, remote: FakeRemote, outbox_path: Path
) -> None:
    """One poison write neither blocks the queue nor disappears: it moves to dead letters."""
    remote.up = False
    await writer.start()
    for ident in "abcd":
        await writer.write(write(ident))
    remote.poison = {"b"}

    remote.up = True
    await eventually(lambda: writer.health().healthy, timeout_s=2, what="recovered")

    assert remote.ids == ["a", "c", "d"]
    await writer.close()
    outbox = await Outbox.open(outbox_path)
    try:
        assert (await outbox.count(), await outbox.dead_letter_count()) == (0, 1)
    finally:
        await outbox.close()


async def test_a_write_refused_directly_raises(writer: BufferedWriter, remote: FakeRemote) -> None:
    """While healthy, a refusal is the caller's problem, not an outage."""
    await writer.start()
    remote.poison = {"x"}

    with pytest.raises(StorageRejected):
        await writer.write(write("x"))
    assert writer.health().healthy


async def test_a_hanging_server_counts_as_down(writer: BufferedWriter, remote: FakeRemote) -> None:
    """No answer within the operation timeout: the write is buffered, not lost or stuck."""
    await writer.start()
    remote.hang = True

    await writer.write(write("a"))

    assert writer.backlog == 1
    assert "no answer within" in writer.health().detail
    remote.hang = False
    await eventually(lambda: writer.health().healthy, timeout_s=2, what="recovered")
    assert remote.ids == ["a"]


async def test_a_refused_ping_starts_degraded_with_the_reason(
    writer: BufferedWriter, remote: FakeRemote
) -> None:
    """A server that answers but refuses (e.g. a migration without permission) is reported,
    not fatal: the service starts and keeps the writes."""
    remote.ping_error = StorageRejected("permission denied for database")

    await writer.start()
    await writer.write(write("a"))

    assert "permission denied" in writer.health().detail
    assert remote.applied == []


async def test_the_monitor_outlives_an_unexpected_error(
    writer: BufferedWriter, remote: FakeRemote
) -> None:
    await writer.start()
    remote.ping_error = RuntimeError("bug in a check")
    await eventually(lambda: not writer.health().healthy, timeout_s=2, what="degraded")

    remote.ping_error = None

    await eventually(lambda: writer.health().healthy, timeout_s=2, what="recovered")


async def test_health_is_cached(writer: BufferedWriter, remote: FakeRemote) -> None:
    """Asking for health never reaches the server."""
    await writer.start()
    pings = remote.pings

    for _ in range(1000):
        writer.health()

    assert pings == remote.pings


async def test_close_stops_the_monitor_and_is_idempotent(writer: BufferedWriter) -> None:
    """After close no task of the writer is left."""
    await writer.start()
    await writer.close()
    await writer.close()

    names = {task.get_name() for task in asyncio.all_tasks()}
    assert "fake-monitor" not in names


async def test_writing_before_start_is_a_programming_error(writer: BufferedWriter) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await writer.write(write("a"))
