"""A thousand observed services under one ``always`` at 10 Hz: failures, CPU per probe, jitter.

One HTTP server process (asyncio, uvloop when installed) answers ``/svc/N/health``
for every N on one port, keeping connections alive, and counts the requests it
answered. The coordinator runs, as a whole ``test-coordinator run`` process, a
scenario that declares N services (each with its own health URL, so its own
connection) and one step ``always: {healthy: [all N], for: 10s, every: 100ms}``.

Reported:

* the verdict: a false failure is any failure (every service answers, always);
* probes: samples x N from the step's result, and the server's own count of
  requests in the same run (the independent measure; the two must agree);
* CPU per probe: the coordinator's CPU (user + system, from wait4) for the run,
  minus that of the same scenario with the ``always`` replaced by ``wait: 10s``
  (start-up, reports), divided by the probes;
* sample lateness (when a sample started after its scheduled moment), p50 / p99 /
  max, from the step's result.

    .venv/bin/python benchmarks/many_services.py [--services 1000] [--every 100ms] [--for 10s]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CLI = Path(sys.executable).with_name("test-coordinator")
# As users run it: byte code cached (some CI images set PYTHONDONTWRITEBYTECODE,
# which makes every start compile the package again).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

SERVER = r"""
import asyncio, sys

BODY = b'{"status": "healthy"}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
answered = 0

class Health(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        global answered
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.buffer = self.buffer[end + 4:]
            answered += 1
            self.transport.write(ANSWER)

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Health, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until told to report
    print(answered, flush=True)

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


@dataclass
class Run:
    outcome: str
    reason: str
    cpu_s: float
    wall_s: float
    samples: int
    lateness_ms: dict[str, float]
    answered: int


def scenario(port: int, services: int, step: str) -> str:
    lines = ["version: 1", f"name: many-services-{services}", "timeout: 5m", "services:"]
    for n in range(services):
        url = f"http://127.0.0.1:{port}/svc/{n}/health"
        lines.append(f"  svc-{n}: {{health: {{http: {{url: '{url}', timeout: 1s}}}}}}")
    lines += ["steps:", f"  - name: watch\n    {step}"]
    return "\n".join(lines) + "\n"


def run_once(work: Path, text: str) -> Run:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        port = int(server.stdout.readline())
        path = work / "scenario.yaml"
        path.write_text(text.replace("PORT", str(port)))
        reports = work / "reports"
        started = time.perf_counter()
        with open(work / "output.txt", "wb") as out:
            proc = subprocess.Popen(
                [str(CLI), "run", "--reports-dir", str(reports), str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ENV,
            )
            _, _, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        server.stdin.write("report\n")
        server.stdin.flush()
        answered = int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
    journal = json.loads(max(reports.glob("*/journal.json"), key=os.path.getmtime).read_text())
    value = journal["steps"][0].get("value") or {}
    return Run(
        outcome=journal["outcome"],
        reason=journal.get("reason", ""),
        cpu_s=usage.ru_utime + usage.ru_stime,
        wall_s=wall,
        samples=int(value.get("samples", 0)),
        lateness_ms=value.get("late_ms", {}),
        answered=answered,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--every", default="100ms")
    parser.add_argument("--for", dest="window", default="10s")
    args = parser.parse_args()
    names = ", ".join(f"svc-{n}" for n in range(args.services))
    watch = f"always: {{healthy: [{names}], for: {args.window}, every: {args.every}}}"
    idle = f"wait: {args.window}"
    with tempfile.TemporaryDirectory(prefix="tc-many-") as tmp:
        work = Path(tmp)
        base = run_once(work, scenario(0, args.services, idle).replace(":0/", ":PORT/"))
        watched = run_once(work, scenario(0, args.services, watch).replace(":0/", ":PORT/"))
    probes = watched.samples * args.services
    cpu_per_probe_us = (watched.cpu_s - base.cpu_s) / probes * 1e6 if probes else float("nan")
    late = watched.lateness_ms
    print(
        f"{args.services} services, every {args.every} for {args.window}, "
        f"{os.cpu_count()} CPUs; test-coordinator {watched.outcome}"
        + (f" ({watched.reason})" if watched.reason else "")
    )
    print(f"  samples                     {watched.samples}")
    print(f"  probes (samples x services) {probes}")
    print(f"  requests the server answered {watched.answered}")
    print(f"  coordinator CPU             {watched.cpu_s:.2f} s (baseline run {base.cpu_s:.2f} s)")
    print(f"  CPU per probe               {cpu_per_probe_us:.1f} us")
    print(
        "  sample lateness p50/p99/max "
        f"{late.get('p50', float('nan')):.1f} / {late.get('p99', float('nan')):.1f} / "
        f"{late.get('max', float('nan')):.1f} ms"
    )
    if watched.outcome != "passed":
        sys.exit(1)


if __name__ == "__main__":
    main()
