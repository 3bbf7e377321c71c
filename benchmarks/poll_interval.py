"""How far a measured recovery moment is from the true one, for several poll intervals.

A tiny_server is told (POST /admin/unhealthy?until=T) to answer /health with 503
until the moment T of the monotonic clock, which every process on the machine
shares. wait_until() then polls it with an HttpProbe, and the error is the
observed moment minus T, once with the moment the successful probe completed
(what wait_until returns) and once with the moment it started. T falls at a
random phase of the polling grid (20 to 60 ms after polling starts).

A second case pauses the server (SIGSTOP) and resumes it at T: a probe parked
in the paused server's accept queue succeeds at the resume, so the start-based
moment lands before T by however long it was parked.

    .venv/bin/python benchmarks/poll_interval.py [--trials 200] [--intervals 2,5,10,20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from test_coordinator.runtime.load import percentile
from test_coordinator.runtime.polling import DEFAULT_POLL_INTERVAL_S, wait_until
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.runtime.probes import HttpProbe
from test_coordinator.targets.process.supervisor import ProcessSpec, ProcessSupervisor

TINY_SERVER = Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "tiny_server.py"


def describe(errors_ms: list[float]) -> str:
    ordered = sorted(errors_ms)
    return (
        f"p50 {percentile(ordered, 50):6.2f}  p95 {percentile(ordered, 95):6.2f}  "
        f"min {ordered[0]:7.2f}  max {ordered[-1]:6.2f}"
    )


async def unhealthy_until_trials(
    client: httpx.AsyncClient, probe: HttpProbe, admin_url: str, interval_s: float, trials: int
) -> tuple[list[float], list[float]]:
    completed, started = [], []
    for _ in range(trials):
        healthy_at = time.monotonic() + random.uniform(0.020, 0.060)
        response = await client.post(admin_url, params={"until": repr(healthy_at)})
        response.raise_for_status()
        result, observed = await wait_until(probe.check, deadline_s=2.0, interval_s=interval_s)
        completed.append((observed - healthy_at) * 1000.0)
        started.append((observed - result.latency_ms / 1000.0 - healthy_at) * 1000.0)
    return completed, started


async def pause_trials(
    backend: ProcessSupervisor, probe: HttpProbe, interval_s: float, trials: int
) -> tuple[list[float], list[float]]:
    completed, started = [], []
    for _ in range(trials):
        await backend.pause("tiny")
        pause_for = random.uniform(0.050, 0.150)
        resumed_at: list[float] = []

        async def resume_later(delay_s: float = pause_for, out: list[float] = resumed_at) -> None:
            await asyncio.sleep(delay_s)
            out.append(time.monotonic())
            await backend.resume("tiny")

        resumer = asyncio.create_task(resume_later())
        try:
            result, observed = await wait_until(probe.check, deadline_s=3.0, interval_s=interval_s)
        finally:
            await resumer
        completed.append((observed - resumed_at[0]) * 1000.0)
        started.append((observed - result.latency_ms / 1000.0 - resumed_at[0]) * 1000.0)
    return completed, started


async def main(trials: int, intervals_ms: list[float], pause_trial_count: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as logs:
        backend = ProcessSupervisor(Path(logs))
        command = (sys.executable, str(TINY_SERVER), "--port", str(port), "--name", "tiny")
        try:
            await backend.start(ProcessSpec("tiny", command))
            async with httpx.AsyncClient(trust_env=False) as client:
                base = f"http://127.0.0.1:{port}"
                probe = HttpProbe(f"{base}/health", timeout_s=1.0)
                await wait_until(probe.check, deadline_s=5.0, interval_s=0.01)

                print(f"unhealthy until T, {trials} trials per interval; error = observed - T (ms)")
                for interval_ms in intervals_ms:
                    done, begun = await unhealthy_until_trials(
                        client, probe, f"{base}/admin/unhealthy", interval_ms / 1000.0, trials
                    )
                    print(f"  interval {interval_ms:4g} ms  completed: {describe(done)}")
                    print(f"  {'':16}  started:   {describe(begun)}")

                default_ms = DEFAULT_POLL_INTERVAL_S * 1000.0
                print(
                    f"paused, resumed at T, {pause_trial_count} trials, interval {default_ms:g} ms"
                )
                done, begun = await pause_trials(
                    backend, probe, DEFAULT_POLL_INTERVAL_S, pause_trial_count
                )
                print(f"  completed: {describe(done)}")
                print(f"  started:   {describe(begun)}")
        finally:
            await backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--intervals", default="2,5,10,20", help="poll intervals in ms")
    parser.add_argument("--pause-trials", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.trials, [float(x) for x in args.intervals.split(",")], args.pause_trials))
