"""Health endpoint throughput and latency, and the idle memory of the service.

Starts ``test-coordinator serve`` (production logging, embedded SQLite) as a
child process, then loads it from a second process:

* throughput: wrk (Debian's package), closed loop, 2 threads, 50 connections, 10 s
  (falls back to the asyncio client below, 50 connections, when wrk is missing);
* latency at a fixed rate: an open-loop asyncio HTTP/1.1 client in a separate
  process sends 500 requests/s for 10 s on keep-alive connections and records
  each latency from its scheduled send time (no coordinated omission);
* idle memory: VmRSS of the service after startup and after the load settles;
* the machine's conditions: cores, load average before the run, and how long a
  bare ``python -c pass`` takes (a slow day shows there first).

Usage: python benchmarks/health.py [--duration 10] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATH = "/api/v1/health"
WRK_THREADS = 2
CONNECTIONS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_service(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("POSTGRES_URL", "REDIS_URL")},
        "HTTP_PORT": str(port),
        "GRPC_PORT": str(free_port()),
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "WARNING",
        "DATA_DIR": str(workdir / "data"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "test_coordinator", "serve"],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /api/v1/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in sock.recv(256):
                    return process, port
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("service did not become ready")


def machine_conditions() -> dict[str, float]:
    """Cores, the 1-minute load average and a bare interpreter's startup time."""
    startups = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startups.append((time.perf_counter() - started) * 1000)
    return {
        "cores": float(os.cpu_count() or 0),
        "load_1m": os.getloadavg()[0],
        "python_startup_ms": sorted(startups)[len(startups) // 2],
    }


# --- the load client (runs in a second process) ---------------------------------


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(f"GET {PATH} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200")


async def fixed_rate(
    port: int, rate: float, duration_s: float, connections: int
) -> dict[str, float]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            ok = await _request(*conn)
            latencies.append((time.perf_counter() - scheduled) * 1000)
            errors += 0 if ok else 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            pool.put_nowait(conn)

    start = time.perf_counter()
    total = int(rate * duration_s)
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "requests": len(latencies),
        "errors": errors,
        "achieved_rps": len(latencies) / elapsed,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": latencies[-1],
    }


async def closed_loop(port: int, duration_s: float, connections: int) -> dict[str, float]:
    count = 0
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            await _request(reader, writer)
            count += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return {"requests": count, "rps": count / (time.perf_counter() - start)}


def client_main(argv: list[str]) -> None:
    mode, port, duration, rate = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    if mode == "rate":
        result = asyncio.run(fixed_rate(port, rate, duration, connections=16))
    else:
        result = asyncio.run(closed_loop(port, duration, connections=CONNECTIONS))
    print(json.dumps(result))


def run_client(mode: str, port: int, duration: float, rate: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", mode, str(port), str(duration), str(rate)],
        check=True,
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    return dict(json.loads(out.stdout))


def wrk_throughput(port: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{int(duration)}s",
            "--latency",
            f"http://127.0.0.1:{port}{PATH}",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms_at_saturation": p99_ms,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()

    machine = machine_conditions()
    with tempfile.TemporaryDirectory() as tmp:
        process, port = start_service(Path(tmp))
        try:
            time.sleep(1.0)  # let startup allocations settle before reading idle memory
            idle_rss = rss_mb(process.pid)
            if shutil.which("wrk"):
                tool = f"wrk -t{WRK_THREADS} -c{CONNECTIONS}"
                throughput = {"tool": tool, **wrk_throughput(port, args.duration)}
            else:
                print(
                    "wrk is not installed (apt-get install wrk): throughput measured with "
                    "the asyncio client, which measures lower",
                    file=sys.stderr,
                )
                throughput = {
                    "tool": f"asyncio client, {CONNECTIONS} connections",
                    **run_client("closed", port, args.duration, 0),
                }
            latency = run_client("rate", port, args.duration, args.rate)
            after_rss = rss_mb(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)

    print(
        f"health throughput ({throughput.pop('tool')}): {throughput['rps']:.0f} req/s  {throughput}"
    )
    print(
        f"latency at {args.rate:.0f} req/s: p50 {latency['p50_ms']:.2f} ms, "
        f"p99 {latency['p99_ms']:.2f} ms, max {latency['max_ms']:.2f} ms, "
        f"errors {latency['errors']:.0f} of {latency['requests']:.0f}"
    )
    print(f"idle RSS: {idle_rss:.1f} MB (after load: {after_rss:.1f} MB)")
    print(
        f"machine: {machine['cores']:.0f} cores, load average {machine['load_1m']:.2f} "
        f"before the run, bare python startup {machine['python_startup_ms']:.0f} ms "
        "(median of 5)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        main()
