"""The control socket served in process and NetfaultControl talking to it: the calls, and
each way a call can fail turned into NetfaultUnavailable or NetfaultRejected."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.errors import (
    NetfaultBusy,
    NetfaultRejected,
    NetfaultStartError,
    NetfaultUnavailable,
)
from test_coordinator.netfault.model import Latency, Pulse, Reset
from test_coordinator.netfault.proxy import NetfaultProxy
from test_coordinator.netfault.server import ControlServer


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a Unix socket's path is at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="nf", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def served(short_dir: Path) -> AsyncIterator[tuple[NetfaultProxy, Path]]:
    proxy = NetfaultProxy(("127.0.0.1", 0), ("127.0.0.1", 9))
    await proxy.start()
    control = ControlServer(proxy, short_dir / "control.sock")
    await control.start()
    yield proxy, control.path
    await control.close()
    await proxy.close()


async def test_set_state_clear_through_the_socket(served: tuple[NetfaultProxy, Path]) -> None:
    proxy, path = served
    control = NetfaultControl(path)

    assert await control.set("slow", Latency(ms=20)) is False
    assert await control.set("slow", Latency(ms=30), pulse=Pulse(on_ms=500, off_ms=500)) is True
    await control.set("rst", Reset())
    state = await control.state()
    stats = await control.stats()
    cleared = await control.clear("slow")

    assert [f["id"] for f in state["faults"]] == ["slow", "rst"]
    assert state["faults"][0]["fault"]["ms"] == 30.0
    assert state["faults"][0]["pulse"] == {"on_ms": 500.0, "off_ms": 500.0}
    assert stats["faults"]["rst"]["resets"] == 0
    assert cleared is not None and cleared["connections"] == 0
    assert await control.clear("slow") == cleared  # an undo tried again still reports it
    assert await control.clear("never-set") is None
    assert await control.clear_all() == ["rst"]
    assert proxy.faults == []


async def test_a_fault_with_an_owner_is_refused_while_another_owners_is_set(
    served: tuple[NetfaultProxy, Path],
) -> None:
    proxy, path = served
    control = NetfaultControl(path)
    await control.set("run-a-step2-link", Latency(ms=20), owner="run-a")

    with pytest.raises(NetfaultBusy, match="faults of another owner are set: run-a-step2"):
        await control.set("run-b-step2-link", Latency(ms=50), owner="run-b")
    assert await control.set("run-a-step3-link", Reset(), owner="run-a") is False
    with pytest.raises(NetfaultRejected, match='"owner" must be a string that starts'):
        await control.set("step4-link", Reset(), owner="run-a")

    assert [f.fault_id for f in proxy.faults] == ["run-a-step2-link", "run-a-step3-link"]
    await control.clear_all()
    assert await control.set("run-b-step2-link", Latency(ms=50), owner="run-b") is False


async def test_the_socket_is_for_its_owner_only(served: tuple[NetfaultProxy, Path]) -> None:
    _, path = served
    assert path.stat().st_mode & 0o777 == 0o600


async def test_a_refused_request_raises_rejected_and_the_socket_goes_on(
    served: tuple[NetfaultProxy, Path],
) -> None:
    _, path = served
    control = NetfaultControl(path)

    with pytest.raises(NetfaultRejected, match="unknown fault kind 'netem'"):
        await control.request({"op": "set", "id": "x", "fault": {"kind": "netem"}})
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b"garbage\n" + b"x" * 70_000 + b"\n")
    first = await reader.readline()
    second = await reader.readline()
    writer.close()
    await writer.wait_closed()

    assert first.startswith(b'{"ok":false,"error":"invalid JSON')
    assert second == b'{"ok":false,"error":"request line too long"}\n'
    assert (await control.state())["faults"] == []


async def test_no_socket_raises_unavailable(short_dir: Path) -> None:
    control = NetfaultControl(short_dir / "absent.sock")

    with pytest.raises(NetfaultUnavailable, match=r"absent.sock: No such file or directory"):
        await control.state()


async def test_a_proxy_that_does_not_answer_raises_unavailable_in_time(short_dir: Path) -> None:
    path = short_dir / "mute.sock"
    held: list[asyncio.StreamWriter] = []
    mute = await asyncio.start_unix_server(lambda _, writer: held.append(writer), path=str(path))
    try:
        control = NetfaultControl(path, timeout_s=0.2)
        with pytest.raises(NetfaultUnavailable, match=r"no answer within 0\.2 s"):
            await control.clear_all()
    finally:
        for writer in held:
            writer.close()
        mute.close()
        await mute.wait_closed()


async def test_a_stale_socket_file_is_replaced_but_a_live_one_is_not(
    served: tuple[NetfaultProxy, Path], short_dir: Path
) -> None:
    proxy, live = served
    with pytest.raises(NetfaultStartError, match="in use by a running proxy"):
        await ControlServer(proxy, live).start()
    stale = short_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(stale))  # bound, never listening: what a killed proxy leaves
    control = ControlServer(proxy, stale)

    await control.start()
    assert await NetfaultControl(stale).state()
    await control.close()
    assert not stale.exists()


async def test_a_socket_that_answers_like_no_netfault_proxy_is_not_trusted(
    short_dir: Path,
) -> None:
    """``ok`` alone proves nothing: a state without a list of faults, or a set that does not
    say whether it replaced one, is an unreadable answer, not "no fault set"."""
    path = short_dir / "impostor.sock"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"ok": true, "faults": "nope"}\n')
        await writer.drain()
        writer.close()

    impostor = await asyncio.start_unix_server(answer, path=str(path))
    try:
        control = NetfaultControl(path)
        with pytest.raises(NetfaultUnavailable, match="its state has no list of faults"):
            await control.state()
        with pytest.raises(NetfaultUnavailable, match='answered without "replaced"'):
            await control.set("x", Reset())
    finally:
        impostor.close()
        await impostor.wait_closed()
