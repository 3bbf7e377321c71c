"""The netfault proxy as its own process: ready line, control socket, faults that outlive
the client that set them (kill -9), thousands of connections, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.polling import eventually
from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.errors import NetfaultUnavailable
from test_coordinator.netfault.model import Partition, Refuse, Reset, SlowClose

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 10.0


@dataclass
class ProxyProcess:
    process: asyncio.subprocess.Process
    port: int
    control: NetfaultControl


async def spawn_proxy(upstream_port: int, control: Path, *extra: str) -> ProxyProcess:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "test_coordinator.netfault",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        f"127.0.0.1:{upstream_port}",
        "--control",
        str(control),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)
    prefix = b"netfault listening on "
    assert line.startswith(prefix), line
    return ProxyProcess(process, int(line[len(prefix) :]), NetfaultControl(control))


async def stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), 10.0)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a Unix socket's path is at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="nf", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in writers:
        writer.close()
    await server.wait_closed()


@pytest.fixture
async def proxy(echo_port: int, short_dir: Path) -> AsyncIterator[ProxyProcess]:
    running = await spawn_proxy(echo_port, short_dir / "control.sock")
    yield running
    await stop(running.process)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def median_round_trip_ms(self, count: int = 30) -> float:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            self.writer.write(b"ping")
            await asyncio.wait_for(self.reader.readexactly(4), 5.0)
            samples.append((time.perf_counter() - started) * 1000)
        return sorted(samples)[count // 2]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


SETTER = """
import asyncio, json, sys
from test_coordinator.netfault.client import NetfaultControl

async def main() -> None:
    control = NetfaultControl(sys.argv[1])
    for request in json.loads(sys.argv[2]):
        await control.request(request)
    print("set", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def set_then_get_killed(proxy: ProxyProcess, *requests: dict[str, object]) -> None:
    """A client process sets the faults, then dies by SIGKILL."""
    setter = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SETTER,
        str(proxy.control.path),
        json.dumps(requests),
        stdout=asyncio.subprocess.PIPE,
    )
    assert setter.stdout is not None
    assert await asyncio.wait_for(setter.stdout.readline(), READY_TIMEOUT_S) == b"set\n"
    setter.kill()
    assert await setter.wait() == -signal.SIGKILL


async def test_a_fault_outlives_the_killed_client_and_clears_from_another(
    proxy: ProxyProcess, echo_port: int
) -> None:
    latency = {"kind": "latency", "ms": 30}
    await set_then_get_killed(proxy, {"op": "set", "id": "slow", "fault": latency})

    direct = await Connection.open(echo_port)
    through = await Connection.open(proxy.port)
    baseline = await direct.median_round_trip_ms()
    with_fault = await through.median_round_trip_ms() - baseline
    stats = await proxy.control.clear("slow")
    after_clear = await through.median_round_trip_ms() - await direct.median_round_trip_ms()
    await direct.close()
    await through.close()

    assert 29.9 <= with_fault <= 31.5
    assert after_clear < 1.0
    assert stats is not None and stats["connections"] == 1
    assert stats["bytes_delayed"] == 30 * 4


async def test_a_pulse_goes_on_after_the_client_that_set_it_died(proxy: ProxyProcess) -> None:
    pulse = {"on_ms": 5, "off_ms": 20}
    await set_then_get_killed(
        proxy, {"op": "set", "id": "flap", "fault": {"kind": "reset"}, "pulse": pulse}
    )

    async def cycles() -> int:
        return int((await proxy.control.state())["faults"][0]["cycles"])

    seen = await cycles()

    async def three_more() -> bool:
        return await cycles() >= seen + 3

    await eventually(three_more, timeout_s=5.0, what="three more cycles")
    assert await proxy.control.clear_all() == ["flap"]


async def test_the_faults_act_the_same_on_the_process_event_loop(proxy: ProxyProcess) -> None:
    """The process runs uvloop when it is installed; the unit tests run asyncio's loop."""
    control = proxy.control
    first = await Connection.open(proxy.port)
    await first.median_round_trip_ms(1)

    await control.set("cut", Partition())
    first.writer.write(b"held")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first.reader.read(1), 0.3)
    await control.clear("cut")
    assert await asyncio.wait_for(first.reader.readexactly(4), 5.0) == b"held"

    await control.set("rst", Reset())
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(first.reader.read(1), 5.0)
    await first.close()
    await control.set("rst", Refuse())
    with pytest.raises(ConnectionRefusedError):
        await Connection.open(proxy.port)
    await control.clear("rst")

    async def listening() -> bool:
        return bool((await control.state())["listening"])

    await eventually(listening, what="listening again")
    await control.set("fin", SlowClose(delay_ms=200))
    last = await Connection.open(proxy.port)
    started = time.perf_counter()
    last.writer.write(b"bye")
    last.writer.write_eof()  # half-closed: the answer still comes back
    assert await asyncio.wait_for(last.reader.readexactly(3), 5.0) == b"bye"
    assert await asyncio.wait_for(last.reader.read(), 5.0) == b""
    assert time.perf_counter() - started >= 0.4  # the FIN held 200 ms each way
    await last.close()
    assert (await control.clear("fin")) == {
        "connections": 1,
        "bytes_delayed": 0,
        "bytes_dropped": 0,
        "eofs_delayed": 2,
        "resets": 0,
        "closes": 0,
        "refusing_ms": 0,
    }


async def test_five_thousand_concurrent_connections(proxy: ProxyProcess) -> None:
    connections = await asyncio.gather(*(Connection.open(proxy.port) for _ in range(5000)))
    try:

        async def all_open() -> bool:
            return bool((await proxy.control.stats())["connections_open"] == 5000)

        await eventually(all_open, timeout_s=20.0, what="5000 connections open")
        for connection in connections:
            connection.writer.write(b"ping")
        replies = await asyncio.gather(
            *(asyncio.wait_for(c.reader.readexactly(4), 20.0) for c in connections)
        )
        assert replies == [b"ping"] * 5000
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def test_garbage_on_the_control_socket_does_not_hurt_the_proxy(proxy: ProxyProcess) -> None:
    reader, writer = await asyncio.open_unix_connection(str(proxy.control.path))
    writer.write(b'\x00\xff{"op":\n{"op": "set", "id": "x", "fault": {"kind": "latency"}}\n')
    replies = [await reader.readline(), await reader.readline()]
    writer.close()
    await writer.wait_closed()

    assert all(reply.startswith(b'{"ok":false,"error":') for reply in replies)
    assert b"latency: missing field ms" in replies[1]
    assert (await proxy.control.state())["faults"] == []
    assert proxy.process.returncode is None


async def test_sigterm_stops_it_cleanly_and_removes_its_socket(
    proxy: ProxyProcess, echo_port: int
) -> None:
    open_one = await Connection.open(proxy.port)
    await open_one.median_round_trip_ms(1)

    assert await stop(proxy.process) == 0
    assert await asyncio.wait_for(open_one.reader.read(), 5.0) == b""  # closed, not left hanging
    await open_one.close()
    assert not proxy.control.path.exists()
    with pytest.raises(NetfaultUnavailable):
        await proxy.control.state()
    # Its folder is not a run's: it stays, and the proxy starts there again (an always-on
    # proxy restarted by hand or by its container engine).
    assert proxy.control.path.parent.is_dir()
    again = await spawn_proxy(echo_port, proxy.control.path)
    try:
        assert [] == (await again.control.state())["faults"]
    finally:
        await stop(again.process)


async def test_a_taken_port_or_live_socket_exits_1_and_bad_arguments_2(
    proxy: ProxyProcess, echo_port: int, short_dir: Path
) -> None:
    async def run(*args: str) -> tuple[int, str]:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "test_coordinator.netfault",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(child.communicate(), 10.0)
        assert child.returncode is not None
        return child.returncode, err.decode()

    upstream = f"127.0.0.1:{echo_port}"
    unused = str(short_dir / "unused.sock")
    taken = await run(
        "--listen", f"127.0.0.1:{proxy.port}", "--upstream", upstream, "--control", unused
    )
    in_use = await run(
        "--listen", "127.0.0.1:0", "--upstream", upstream, "--control", str(proxy.control.path)
    )
    bad = await run("--listen", "nowhere", "--upstream", upstream, "--control", unused)

    assert taken[0] == 1 and f"netfault: cannot listen on 127.0.0.1:{proxy.port}" in taken[1]
    assert in_use[0] == 1 and "is in use by a running proxy" in in_use[1]
    assert bad[0] == 2 and "'nowhere' is not HOST:PORT" in bad[1]


async def test_it_raises_its_open_files_limit_to_the_hard_one(short_dir: Path) -> None:
    """Containers start processes with a soft limit of 1024 open files; the proxy needs two a
    connection, and its control socket must still be accepted when clients pile up."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard limit here is {hard}: nothing to raise")

    def soft_1024() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "test_coordinator.netfault",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--control",
        str(short_dir / "limits.sock"),
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=soft_1024,
    )
    try:
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)
        limits = await asyncio.to_thread(Path(f"/proc/{process.pid}/limits").read_text)
        [line] = [row for row in limits.splitlines() if row.startswith("Max open files")]
        soft = int(line.split()[3])
    finally:
        await stop(process)

    expected = 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    assert expected == soft


async def test_a_cleared_refuse_is_answered_once_the_proxy_listens_again(
    proxy: ProxyProcess,
) -> None:
    """Whoever heals a refuse can connect the moment the clear is answered: the undo is
    seen done, not promised (it was answered before the reopening, 34 times in 50)."""
    for cycle in range(30):
        await proxy.control.set(f"no-{cycle}", Refuse())
        stats = await proxy.control.clear(f"no-{cycle}")

        connection = await Connection.open(proxy.port)  # ConnectionRefusedError otherwise
        await connection.close()
        assert stats is not None and stats["refusing_ms"] >= 1


async def test_a_refuse_healed_while_another_process_took_the_port_is_not_healed(
    proxy: ProxyProcess, short_dir: Path
) -> None:
    """The port a refuse freed can be taken (another run's ports: allocation): the heal
    then fails saying why, and succeeds once the proxy could listen again."""
    from test_coordinator.netfault.heal import HealFailed, heal

    await proxy.control.set("no", Refuse())
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", proxy.port))
    squatter.listen()
    try:
        with pytest.raises(HealFailed, match=r"does not listen: .*Address already in use"):
            await heal(proxy.control.path, "no", proxy_gone=False)
    finally:
        squatter.close()

    async def listening() -> bool:
        return (await proxy.control.state())["listening"] is True

    await eventually(listening, timeout_s=5.0, what="the proxy listening again")
    healed = await heal(proxy.control.path, "no", proxy_gone=False)
    assert healed.stats is not None and healed.stats["refusing_ms"] >= 1  # not lost
    assert "refused new connections for" in healed.detail


async def test_removing_a_proxy_killed_with_sigkill_leaves_no_socket_folder(
    echo_port: int, tmp_path: Path
) -> None:
    """A proxy killed before it could remove its socket (a Ctrl-C storm during setup, a
    crash): its removal takes the stale socket, and the run's socket folder, with it."""
    import os
    import uuid

    from test_coordinator.netfault.paths import control_socket
    from test_coordinator.runtime.ports_alloc import free_port
    from test_coordinator.targets.port import RunScope, TargetSpec
    from test_coordinator.targets.proxy import proxy_backend

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    spec = TargetSpec(
        "link", "proxy", {"listen": free_port(), "upstream": f"127.0.0.1:{echo_port}"}
    )
    backend = proxy_backend({"link": spec}, RunScope(run_id, tmp_path))
    socket_path = control_socket(run_id, "link")
    await backend.start("link")
    await eventually(socket_path.exists, timeout_s=10.0, what="the control socket")

    os.kill(backend.handle("link")["pid"], signal.SIGKILL)
    await backend.remove("link")

    assert not socket_path.parent.exists(), sorted(socket_path.parent.iterdir())
