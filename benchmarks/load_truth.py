"""Does the load generator tell the truth on a busy machine?

Starts nginx (installing Debian's ``nginx`` with apt-get when it is missing and
this runs as root; else falls back to Python's ThreadingHTTPServer in a process
of its own, and says so) on a free port, keeps every core busy with CPU hogs
(``stress-ng`` when installed, else ``python -c "while True: pass"``), then runs
the built-in load generator and an independent client at the same rate, against
the same server, at the same time. The independent client is a plain blocking
``socket`` in a thread, keep-alive, with its own timing (monotonic clock before
``sendall``, after the whole answer is read).

Per window (default 1 s) it prints both sides' request count, error rate and
p50, and the differences; it exits 1 if any window breaks the bounds: error
rates within 1 percentage point, p50 within 1 ms, and the generator's count
within 1 % of rate x window.

``--outage S`` kills the server a third into the run and starts it again S
seconds later, so that both sides also have real failures to agree on.

    .venv/bin/python benchmarks/load_truth.py [--rate 100] [--duration 20] [--hogs N]
        [--outage 0] [--server auto|nginx|python]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from test_coordinator.runtime.load import LoadGenerator, percentile
from test_coordinator.runtime.ports_alloc import free_port

MAX_ERROR_DIFF = 0.01
MAX_P50_DIFF_MS = 1.0
MAX_COUNT_DIFF = 0.01


@dataclass(frozen=True, slots=True)
class RawSample:
    at_ms: float
    latency_ms: float
    ok: bool
    reason: str


# -- the server


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

PYTHON_SERVER = """\
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def install_nginx() -> str | None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print("nginx is missing: apt-get install nginx ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def quietly(*argv: str) -> int:
        out = subprocess.DEVNULL
        return subprocess.run(argv, stdout=out, stderr=out, env=env, check=False).returncode

    install = ("apt-get", "install", "-y", "--no-install-recommends", "nginx")
    if quietly(*install) != 0:
        quietly("apt-get", "update")
        quietly(*install)
    return find_nginx()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {deadline_s:g} s")


class Server:
    """The server process; ``outage`` kills it and starts it again on the same port."""

    def __init__(self, argv: list[str], port: int, what: str) -> None:
        self.argv, self.port, self.what = argv, port, what
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, start_new_session=True, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def outage(self, after_s: float, for_s: float) -> threading.Thread:
        def run() -> None:
            time.sleep(after_s)
            self.stop()
            time.sleep(for_s)
            self.start()

        thread = threading.Thread(target=run, name="outage", daemon=True)
        thread.start()
        return thread


@contextmanager
def server(kind: str, workdir: Path) -> Iterator[Server]:
    port = free_port()
    nginx = find_nginx() if kind in ("auto", "nginx") else None
    if nginx is None and kind in ("auto", "nginx"):
        nginx = install_nginx()
    if nginx is None and kind == "nginx":
        raise SystemExit("nginx is not installed and could not be installed")
    if nginx is not None:
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
        argv = [nginx, "-e", str(workdir / "error.log"), "-p", str(workdir), "-c", str(conf)]
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        what = f"nginx ({version.stderr.strip() or nginx}), 1 worker"
    else:
        script = workdir / "server.py"
        script.write_text(PYTHON_SERVER)
        argv = [sys.executable, str(script), str(port)]
        what = "Python ThreadingHTTPServer (nginx unavailable), in its own process"
    running = Server(argv, port, what)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextmanager
def cpu_hogs(count: int) -> Iterator[str]:
    if count <= 0:
        yield "none"
        return
    stress = shutil.which("stress-ng")
    if stress is not None:
        argv = [[stress, "--cpu", str(count), "--quiet"]]
        what = f"stress-ng --cpu {count}"
    else:
        argv = [[sys.executable, "-c", "while True: pass"]] * count
        what = f'{count} x python -c "while True: pass"'
    procs = [subprocess.Popen(a, start_new_session=True) for a in argv]
    try:
        yield what
    finally:
        for proc in procs:
            stop_group(proc)


# -- the independent client


class RawClient:
    """Blocking keep-alive HTTP/1.1 GETs at ``rate`` from ``first_s``; each sample is
    timed on its own (send to whole answer). Open loop with catch-up."""

    def __init__(
        self, port: int, rate: float, first_s: float, duration_s: float, timeout_s: float
    ) -> None:
        self.port = port
        self.rate = rate
        self.first_s = first_s
        self.duration_s = duration_s
        self.timeout_s = timeout_s
        self.samples: list[RawSample] = []
        self._request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        self._sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, name="raw client", daemon=True)

    def _run(self) -> None:
        slot = 0
        while True:
            due = self.first_s + slot / self.rate
            if due - self.first_s >= self.duration_s:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            slot += 1
            sent = time.monotonic()
            ok, reason = self._exchange()
            done = time.monotonic()
            self.samples.append(
                RawSample((sent - self.first_s) * 1000, (done - sent) * 1000, ok, reason)
            )
        if self._sock is not None:
            self._sock.close()

    def _exchange(self) -> tuple[bool, str]:
        for attempt in (1, 2):
            reused = self._sock is not None
            try:
                if self._sock is None:
                    self._sock = socket.create_connection(
                        ("127.0.0.1", self.port), timeout=self.timeout_s
                    )
                    self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sock.sendall(self._request)
                status, keep_alive = self._read_answer(self._sock)
            except TimeoutError:
                self._drop()
                return False, "timeout"
            except ConnectionRefusedError:
                self._drop()
                return False, "refused"
            except (ConnectionResetError, BrokenPipeError, EOFError):
                self._drop()
                if reused and attempt == 1:
                    continue  # the server closed a kept-alive connection: once more
                return False, "reset"
            except OSError:
                self._drop()
                return False, "other"
            if not keep_alive:
                self._drop()
            return status < 400, "" if status < 400 else f"status {status}"
        return False, "reset"

    def _read_answer(self, sock: socket.socket) -> tuple[int, bool]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])
        }
        length = int(headers.get(b"content-length", b"0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            body += chunk
        return status, headers.get(b"connection", b"").lower() != b"close"

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# -- the comparison


@dataclass(frozen=True, slots=True)
class Side:
    count: int
    error_rate: float
    p50_ms: float | None


def side(latencies: list[float], errors: int) -> Side:
    ordered = sorted(latencies)
    rate = errors / len(ordered) if ordered else 0.0
    return Side(len(ordered), rate, percentile(ordered, 50) if ordered else None)


async def measure(
    port: int, rate: float, duration_s: float, timeout_s: float
) -> tuple[LoadGenerator, RawClient]:
    origin = time.monotonic() + 0.05
    raw = RawClient(port, rate, origin, duration_s, timeout_s)
    generator = LoadGenerator(
        f"http://127.0.0.1:{port}/",
        rate,
        timeout_s=timeout_s,
        origin_s=origin,
        max_duration_s=duration_s,
    )
    # Both schedules start at ``origin``: the generator's first send is when it starts.
    await asyncio.sleep(max(origin - time.monotonic(), 0.0))
    generator.start()
    raw.thread.start()
    await asyncio.sleep(duration_s + 0.2)  # it stops sending by itself after duration_s
    await generator.stop()
    await asyncio.to_thread(raw.thread.join)
    return generator, raw


def compare(
    generator: LoadGenerator, raw: RawClient, rate: float, duration_s: float, window_s: float
) -> bool:
    samples = generator.samples()
    windows = int(duration_s / window_s)
    expected = rate * window_s
    print(
        f"{'window':>10} | {'gen n':>6} {'err %':>6} {'p50 ms':>7} | "
        f"{'raw n':>6} {'err %':>6} {'p50 ms':>7} | {'d err pp':>8} {'d p50 ms':>8}"
    )
    worst_err = worst_p50 = worst_count = 0.0
    broken = False
    for w in range(windows):
        start, end = w * window_s * 1000, (w + 1) * window_s * 1000
        ours = [s for s in samples if start <= s.at_ms < end]
        theirs = [s for s in raw.samples if start <= s.at_ms < end]
        a = side([s.latency_ms for s in ours], sum(1 for s in ours if not s.ok))
        b = side([s.latency_ms for s in theirs], sum(1 for s in theirs if not s.ok))
        d_err = abs(a.error_rate - b.error_rate)
        d_p50 = abs((a.p50_ms or 0.0) - (b.p50_ms or 0.0))
        d_count = abs(a.count - expected) / expected
        worst_err, worst_p50 = max(worst_err, d_err), max(worst_p50, d_p50)
        worst_count = max(worst_count, d_count)
        bad = d_err > MAX_ERROR_DIFF or d_p50 > MAX_P50_DIFF_MS or d_count > MAX_COUNT_DIFF
        broken = broken or bad
        print(
            f"{start / 1000:4.0f}-{end / 1000:<4.0f}s | {a.count:6d} {a.error_rate:6.1%} "
            f"{a.p50_ms or 0:7.3f} | {b.count:6d} {b.error_rate:6.1%} {b.p50_ms or 0:7.3f} | "
            f"{d_err * 100:8.2f} {d_p50:8.3f}{'  <-- out of bounds' if bad else ''}"
        )
    ours_all = Counter(s.reason for s in samples if not s.ok)
    theirs_all = Counter(s.reason for s in raw.samples if not s.ok)
    summary = generator.summary()
    print(
        f"\nmax differences: error rate {worst_err * 100:.2f} pp (bound {MAX_ERROR_DIFF * 100:g}), "
        f"p50 {worst_p50:.3f} ms (bound {MAX_P50_DIFF_MS:g}), "
        f"generator count vs rate x window {worst_count:.2%} (bound {MAX_COUNT_DIFF:.0%})"
    )
    print(
        f"generator: {len(samples)} requests, failures {dict(ours_all) or 'none'}, "
        f"skipped {summary.skipped}, p99 {summary.p99_ms} ms; "
        f"raw client: {len(raw.samples)} requests, failures {dict(theirs_all) or 'none'}"
    )
    return not broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument(
        "--outage",
        type=float,
        default=0.0,
        help="kill the server a third into the run, start it again this many s later",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="load-truth-") as tmp,
        server(args.server, Path(tmp)) as running,
        cpu_hogs(args.hogs) as hogs,
    ):
        print(f"server:   {running.what} on 127.0.0.1:{running.port}")
        print(f"cpu load: {hogs} on {os.cpu_count()} cores")
        print(f"load:     {args.rate:g} req/s for {args.duration:g} s, timeout {args.timeout:g} s,")
        print("          the generator and a raw blocking-socket client at the same time")
        if args.outage:
            third = args.duration / 3
            print(f"outage:   server killed at {third:g} s, started again {args.outage:g} s later")
            running.outage(third + 0.05, args.outage)
        print()
        generator, raw = asyncio.run(measure(running.port, args.rate, args.duration, args.timeout))
    ok = compare(generator, raw, args.rate, args.duration, args.window)
    print("PASS" if ok else "FAIL: out of bounds")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
