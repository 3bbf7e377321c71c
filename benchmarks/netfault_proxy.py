"""The netfault proxy's cost and accuracy, against a server that is not ours (redis-server).

Starts ``redis-server`` (Debian's package) and the proxy as its own process in
front of it (``python -m test_coordinator.netfault``), then, from this process,
with raw non-blocking sockets:

* the proxy's CPU time per request at 10,000 a second (from /proc);
* pass-through overhead: PING/PONG over 16 keep-alive connections, open loop at
  1,000 and 10,000 requests a second, each latency taken from the request's
  scheduled send time; direct, through the proxy and through socat (a relay
  written in C: the cost of any extra hop on this machine) in turns. The added
  latency is the difference of the percentiles (the requests are not paired);
* the same at 1,000 requests a second with 5,000 idle connections held open
  through the proxy (by another process);
* latency-fault accuracy: a 20 ms downstream latency set and cleared through
  the control socket, 500 requests a second, in alternating rounds; how far
  the fault moved the p50 and p95 from +20 ms (the verdict: the path's own
  jitter cancels out), and each request's |latency - 20 ms - p50 without the
  fault| (which keeps that jitter). Also with the event loop's own timers
  (uvloop: a millisecond clock) to show what the proxy's timerfd is for, and
  both kinds of timers alone, in this process, 20.x ms ahead;
* bulk throughput: GET of a 64 MiB value (server → client) and SET of it
  (client → server), direct, through the proxy and through socat in turns;
  best of 5.

Usage: python benchmarks/netfault_proxy.py [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.model import Latency
from test_coordinator.netfault.timers import LoopTimers, make_timers, now
from test_coordinator.runtime.ports_alloc import free_port

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"
BULK = 64 << 20
LOOP_TIMERS_PROXY = (  # the proxy with the event loop's own timers instead of the timerfd
    "import sys, uvloop\n"
    "from pathlib import Path\n"
    "from test_coordinator.netfault import proxy, timers\n"
    "from test_coordinator.netfault.server import serve\n"
    "proxy.make_timers = timers.LoopTimers\n"
    "uvloop.run(serve(('127.0.0.1', 0), ('127.0.0.1', int(sys.argv[1])), Path(sys.argv[2])))\n"
)


# --- the servers ------------------------------------------------------------------------


def wait_ready(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(PING)
            if s.recv(16) == PONG:
                return
        time.sleep(0.05)
    raise RuntimeError("not ready")


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is needed (apt-get install redis-server)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process = subprocess.Popen([*command, "no"], stdout=subprocess.DEVNULL)
    try:
        wait_ready(process, port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def netfault(
    upstream_port: int, workdir: Path, *, loop_timers: bool = False
) -> Iterator[tuple[int, int]]:
    """The proxy as its own process in front of ``upstream_port``: (its port, its pid)."""
    control = workdir / ("loop-timers.sock" if loop_timers else "control.sock")
    if loop_timers:
        command = [sys.executable, "-c", LOOP_TIMERS_PROXY, str(upstream_port), str(control)]
    else:
        command = [
            *(sys.executable, "-m", "test_coordinator.netfault"),
            *("--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream_port}"),
            *("--control", str(control)),
        ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("netfault listening on "):
            raise RuntimeError(f"netfault did not start: {line!r}")
        yield int(line.split()[-1]), process.pid
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def socat_relay(upstream_port: int) -> Iterator[int | None]:
    """A relay written in C, for reference (None when socat is not installed)."""
    binary = shutil.which("socat")
    if binary is None:
        yield None
        return
    port = free_port()
    listen = f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,nodelay"
    process = subprocess.Popen(
        [binary, "-b", "262144", listen, f"TCP:127.0.0.1:{upstream_port},nodelay"]
    )
    try:
        wait_ready(process, port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


# --- the load -----------------------------------------------------------------------------


def open_loop(port: int, rate: float, duration_s: float, connections: int = 16) -> list[float]:
    """Latencies (s) of PINGs sent at ``rate`` a second, from their scheduled send time."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
    index = {sock: i for i, sock in enumerate(socks)}
    in_flight: list[deque[float]] = [deque() for _ in socks]
    partial = [0] * connections
    latencies: list[float] = []
    total = int(rate * duration_s)
    interval = 1 / rate
    start = time.perf_counter() + 0.01
    sent = 0
    try:
        while sent < total or any(in_flight):
            now = time.perf_counter()
            while sent < total and start + sent * interval <= now:
                i = sent % connections
                socks[i].send(PING)
                in_flight[i].append(start + sent * interval)
                sent += 1
            timeout = max(0.0, start + sent * interval - time.perf_counter()) if sent < total else 1
            readable, _, _ = select.select(socks, [], [], timeout)
            now = time.perf_counter()
            for sock in readable:
                i = index[sock]
                received = partial[i] + len(sock.recv(65536))
                for _ in range(received // len(PONG)):
                    latencies.append(now - in_flight[i].popleft())
                partial[i] = received % len(PONG)
    finally:
        for sock in socks:
            sock.close()
    return latencies


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def interleaved(ports: dict[str, int], rate: float, duration_s: float) -> dict[str, list[float]]:
    """Latencies through each port, measured in turns (four rounds each, after a warm-up)."""
    for port in ports.values():
        open_loop(port, rate, 0.3)
    samples: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(4):
        for name, port in ports.items():
            samples[name] += open_loop(port, rate, duration_s / 4)
    return samples


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_per_request(pid: int, port: int, rate: float, duration_s: float) -> tuple[float, float]:
    """The proxy's user and system CPU seconds per request at ``rate``."""
    user, system = cpu_seconds(pid)
    count = len(open_loop(port, rate, duration_s))
    user_after, system_after = cpu_seconds(pid)
    return (user_after - user) / count, (system_after - system) / count


def bulk_get(port: int) -> float:
    """Seconds to GET the 64 MiB value."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        buffer = bytearray(1 << 20)
        expected = len(f"${BULK}\r\n") + BULK + 2
        started = time.perf_counter()
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
        got = 0
        while got < expected:
            got += sock.recv_into(buffer)
        return time.perf_counter() - started


def bulk_set(port: int, value: bytes) -> float:
    """Seconds to SET the 64 MiB value (until +OK)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % len(value))
        sock.sendall(value)
        sock.sendall(b"\r\n")
        assert sock.recv(16) == b"+OK\r\n"
        return time.perf_counter() - started


def throughput(
    ports: dict[str, int], value: bytes, runs: int = 5
) -> dict[str, tuple[float, float]]:
    """MB/s of GET and of SET through each port, best of ``runs``, the ports in turns.

    In turns (as the latency rounds are), so that a spell of load from
    elsewhere on the machine falls on every port alike, not on one.
    """
    for port in ports.values():
        bulk_set(port, value)  # stores the value, and warms each path up
    get_s = dict.fromkeys(ports, float("inf"))
    set_s = dict.fromkeys(ports, float("inf"))
    for _ in range(runs):
        for name, port in ports.items():
            get_s[name] = min(get_s[name], bulk_get(port))
            set_s[name] = min(set_s[name], bulk_set(port, value))
    return {name: (BULK / get_s[name] / 1e6, BULK / set_s[name] / 1e6) for name in ports}


ACCURACY_RATE = 500


def latency_fault(proxied: int, control: Path, duration_s: float) -> tuple[list[float], ...]:
    """Latencies without and with a 20 ms latency fault, in alternating rounds."""
    client = NetfaultControl(control)
    open_loop(proxied, ACCURACY_RATE, 0.3)
    without: list[float] = []
    with_fault: list[float] = []
    for _ in range(10):  # short rounds, so that the machine's noise falls on both alike
        without += open_loop(proxied, ACCURACY_RATE, duration_s / 10)
        asyncio.run(client.set("bench", Latency(ms=20)))
        try:
            with_fault += open_loop(proxied, ACCURACY_RATE, duration_s / 10)
        finally:
            asyncio.run(client.clear("bench"))
    return without, with_fault


def timer_lateness(use_timerfd: bool, count: int = 300) -> list[float]:
    """How late (s) timers 20.x ms ahead fire on uvloop: the proxy's timerfd, or the loop's own."""
    import random

    import uvloop

    async def measure() -> list[float]:
        loop = asyncio.get_running_loop()
        timers = make_timers(loop) if use_timerfd else LoopTimers(loop)
        lateness: list[float] = []
        dice = random.Random(1)
        try:
            for _ in range(count):
                fired = asyncio.Event()
                due = now() + 0.020 + dice.random() / 1000

                def fire(due: float = due, fired: asyncio.Event = fired) -> None:
                    lateness.append(now() - due)
                    fired.set()

                timers.call_at(due, fire)
                await fired.wait()
        finally:
            timers.close()
        return lateness

    return uvloop.run(measure())


def accuracy_rows(label: str, without: list[float], with_fault: list[float]) -> list[Row]:
    """How far from +20 ms the fault moved each percentile, and each request's own error."""
    shift50 = pct(with_fault, 50) - pct(without, 50) - 0.020
    shift95 = pct(with_fault, 95) - pct(without, 95) - 0.020
    reference = pct(without, 50)
    errors = [abs(sample - 0.020 - reference) for sample in with_fault]
    verdict = abs(shift95) < 1e-3 if not label else None
    return [
        (f"{label}20 ms latency: p50 shift - 20 ms", us(shift50), "", None),
        (f"{label}20 ms latency: p95 shift - 20 ms", us(shift95), "< 1 ms", verdict),
        (f"{label}  (p95 of |latency - 20 ms - p50 without|)", us(pct(errors, 95)), "", None),
    ]


HOLDER = (
    "import socket, sys\n"
    "address = ('127.0.0.1', int(sys.argv[1]))\n"
    "held = [socket.create_connection(address) for _ in range(int(sys.argv[2]))]\n"
    "for sock in held: sock.sendall(b'*1\\r\\n$4\\r\\nPING\\r\\n')\n"
    "assert all(sock.recv(16) == b'+PONG\\r\\n' for sock in held)\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[None]:
    """``count`` connections open (each used once) from another process, for the duration."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(port), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        if holder.stdout.readline() != b"held\n":
            raise RuntimeError("could not hold the idle connections")
        yield
    finally:
        holder.stdin.close()
        holder.wait(10)


# --- the table ------------------------------------------------------------------------------


Row = tuple[str, str, str, bool | None]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def latency_rows(rate: int, samples: dict[str, list[float]]) -> list[Row]:
    direct = samples["direct"]
    ours = samples["netfault"]
    p50 = pct(ours, 50) - pct(direct, 50)
    p99 = pct(ours, 99) - pct(direct, 99)
    rows: list[Row] = [
        (f"added latency p50 at {rate:,} req/s", us(p50), "< 100 µs", p50 < 100e-6),
        (f"added latency p99 at {rate:,} req/s", us(p99), "", None),
        ("  (direct p50 / p99)", f"{us(pct(direct, 50))} / {us(pct(direct, 99))}", "", None),
    ]
    if "socat" in samples:
        socat = samples["socat"]
        added = f"{us(pct(socat, 50) - pct(direct, 50))} / {us(pct(socat, 99) - pct(direct, 99))}"
        rows.append(("  (socat, a C relay: added p50 / p99)", added, "", None))
    return rows


def throughput_rows(ports: dict[str, int]) -> list[Row]:
    value = bytes(range(256)) * (BULK // 256)
    measured = throughput(ports, value)
    rows: list[Row] = []
    for index, name in ((0, "GET 64 MiB (downstream)"), (1, "SET 64 MiB (upstream)")):
        direct = measured["direct"][index]
        ours = measured["netfault"][index] / direct
        rows.append(
            (
                f"throughput {name}, proxied / direct",
                f"{ours:.0%} ({measured['netfault'][index]:,.0f} / {direct:,.0f} MB/s)",
                ">= 80 %",
                ours >= 0.8,
            )
        )
        if "socat" in measured:
            rows.append(
                ("  (socat / direct)", f"{measured['socat'][index] / direct:.0%}", "", None)
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    args = parser.parse_args()
    rows: list[Row] = []
    workdir = Path(tempfile.mkdtemp(prefix="nfb", dir="/tmp"))
    try:
        with (
            redis_server() as direct,
            netfault(direct, workdir) as (proxied, pid),
            socat_relay(direct) as socat,
        ):
            ports = {"direct": direct, "netfault": proxied}
            if socat is not None:
                ports["socat"] = socat
            for rate in (1000, 10000):
                rows += latency_rows(rate, interleaved(ports, rate, args.duration))
            user, system = cpu_per_request(pid, proxied, 10000, args.duration)
            rows.append(
                (
                    "proxy CPU per request at 10,000 req/s",
                    f"{us(user)} user + {us(system)} system",
                    "",
                    None,
                )
            )
            with idle_connections(proxied, 5000):
                samples = interleaved({"direct": direct, "netfault": proxied}, 1000, args.duration)
            p50 = pct(samples["netfault"], 50) - pct(samples["direct"], 50)
            rows.append(
                ("added p50, 1,000 req/s, 5,000 idle conns", us(p50), "< 100 µs", p50 < 100e-6)
            )
            rows += accuracy_rows(
                "", *latency_fault(proxied, workdir / "control.sock", args.duration)
            )
            with netfault(direct, workdir, loop_timers=True) as (other, _):
                samples_other = latency_fault(other, workdir / "loop-timers.sock", args.duration)
            rows += accuracy_rows("  loop timers: ", *samples_other)
            for label, use_timerfd in (("timerfd", True), ("uvloop's own", False)):
                late = timer_lateness(use_timerfd)
                rows.append(
                    (
                        f"  ({label} timers alone: lateness p50 / p95)",
                        f"{us(pct(late, 50))} / {us(pct(late, 95))}",
                        "",
                        None,
                    )
                )
            rows += throughput_rows(ports)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(row[0]) for row in rows)
    print(f"{'figure':<{width}}  {'measured':>28}  {'target':>9}  verdict")
    for name, value_text, target, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{name:<{width}}  {value_text:>28}  {target:>9}  {verdict}")
    return 0 if all(row[3] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
