"""Probes turn every failure of the target into a result, within their timeout."""

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from support.canned_http import Answer, canned_server, http_answer
from support.polling import eventually
from test_coordinator.engine.wiring import RuntimeProbes
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.runtime.probes import (
    CommandProbe,
    GrpcHealthProbe,
    HttpProbe,
    ProbeResult,
    TcpProbe,
)
from test_coordinator.scenario.probes import ProbeSpec
from test_coordinator.targets.process.marker import (
    RUN_ID_ENV,
    marked_processes,
    marker_env,
    terminate_marked,
)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


HEALTHY = {"status": "healthy", "deps": [{"name": "db", "up": True}]}


async def test_http_probe_to_a_closed_port_fails_with_the_reason(closed_port: int) -> None:
    """Connection refused becomes ok=False with the system's wording, not an exception."""
    async with HttpProbe(f"http://127.0.0.1:{closed_port}/health", timeout_s=1.0) as probe:
        result = await probe.check()

    assert not result.ok
    assert not result.refused, "the target never saw it: not a refusal"
    assert result.value is None
    assert "Connection refused" in result.detail
    assert f":{closed_port}/health" in result.detail


async def test_http_probe_is_bounded_by_its_timeout(silent_port: int) -> None:
    """A server that accepts but never answers costs the timeout, not more."""
    started = time.monotonic()
    async with HttpProbe(f"http://127.0.0.1:{silent_port}/", timeout_s=0.1) as probe:
        result = await probe.check()
    elapsed = time.monotonic() - started

    assert not result.ok
    assert "no answer within 0.1 s" in result.detail
    assert 0.1 <= elapsed < 1.0


async def test_http_probe_invalid_url_is_a_result() -> None:
    """Even a malformed URL is reported, never raised."""
    async with HttpProbe("ftp://127.0.0.1/", timeout_s=0.5) as probe:
        result = await probe.check()

    assert not result.ok
    assert "unsupported URL" in result.detail


async def test_http_probe_value_is_the_json_body() -> None:
    """A JSON answer is decoded into the value; matching fields pass."""
    async with canned_server(lambda _: http_answer(200, HEALTHY)) as server:
        fields = {"status": "healthy", "deps[0].up": True}
        async with HttpProbe(f"{server.url}/health", json_fields=fields) as probe:
            result = await probe.check()

    assert result.ok, result.detail
    assert result.value == HEALTHY
    assert result.latency_ms >= 0


async def test_http_probe_reports_every_field_that_differs() -> None:
    """Wrong and missing fields are each named in the detail."""
    async with canned_server(lambda _: http_answer(200, HEALTHY)) as server:
        fields = {"status": "degraded", "deps[0].up": 1, "version": "2"}
        async with HttpProbe(f"{server.url}/health", json_fields=fields) as probe:
            result = await probe.check()

    assert not result.ok
    assert "status is 'healthy', expected 'degraded'" in result.detail
    assert "deps[0].up is True, expected 1" in result.detail
    assert "no key 'version'" in result.detail


async def test_http_probe_status_must_be_one_of_the_expected() -> None:
    """A 503 fails a probe expecting 200 but passes one expecting (200, 503)."""
    async with canned_server(lambda _: http_answer(503, {"status": "starting"})) as server:
        async with HttpProbe(server.url) as probe:
            strict = await probe.check()
        async with HttpProbe(server.url, expect_status=(200, 503)) as probe:
            lenient = await probe.check()

    assert not strict.ok
    assert strict.refused, "the target answered: a refusal, polling may back off"
    assert "status 503, expected 200" in strict.detail
    assert strict.value == {"status": "starting"}
    assert lenient.ok


async def test_http_probe_text_body_is_the_value() -> None:
    """A body that is not JSON is given as text, decoded by its charset."""
    answer = http_answer(200, "café".encode("latin-1"), content_type="text/plain; charset=latin-1")
    async with canned_server(lambda _: answer) as server, HttpProbe(server.url) as probe:
        result = await probe.check()

    assert result.ok
    assert result.value == "café"


async def test_http_probe_reports_a_broken_answer() -> None:
    """An answer that is not HTTP becomes a failed result that says so."""
    garbage = Answer([b"SSH-2.0-OpenSSH\r\n\r\n"], close=True)
    async with canned_server(lambda _: garbage) as server, HttpProbe(server.url) as probe:
        result = await probe.check()

    assert not result.ok
    assert "not an HTTP/1.x answer: 'SSH-2.0-OpenSSH'" in result.detail


async def test_tcp_probe_connects_and_fails(closed_port: int, silent_port: int) -> None:
    """A listening port passes; a closed one fails with the reason."""
    up = await TcpProbe("127.0.0.1", silent_port, timeout_s=1.0).check()
    down = await TcpProbe("127.0.0.1", closed_port, timeout_s=1.0).check()

    assert up.ok
    assert not down.ok
    assert "Connection refused" in down.detail


async def test_grpc_probe_to_a_closed_port_fails(closed_port: int) -> None:
    """gRPC UNAVAILABLE is a failed result with the status code."""
    probe = GrpcHealthProbe(f"127.0.0.1:{closed_port}", timeout_s=1.0)
    try:
        result = await probe.check()
    finally:
        await probe.aclose()

    assert not result.ok
    assert "UNAVAILABLE" in result.detail


async def test_grpc_probe_to_a_silent_port_is_bounded(silent_port: int) -> None:
    """A peer that never speaks HTTP/2 costs the timeout, not more."""
    probe = GrpcHealthProbe(f"127.0.0.1:{silent_port}", timeout_s=0.1)
    started = time.monotonic()
    try:
        result = await probe.check()
    finally:
        await probe.aclose()

    assert not result.ok
    assert time.monotonic() - started < 0.5


async def test_command_probe_value_is_stdout() -> None:
    """Exit 0 passes; stdout (stripped) is the value."""
    result = await CommandProbe(["sh", "-c", "echo '  42  '"], timeout_s=2.0).check()

    assert result == ProbeResult(True, "42", "sh: exit status 0", result.latency_ms)


async def test_command_probe_unexpected_exit_names_stderr() -> None:
    """A different exit status fails, with the end of stderr in the detail."""
    result = await CommandProbe(["sh", "-c", "echo out; echo broken >&2; exit 3"]).check()

    assert not result.ok
    assert result.value == "out"
    assert "exit status 3, expected 0; stderr: broken" in result.detail


async def test_command_probe_expected_exit_can_be_nonzero() -> None:
    result = await CommandProbe(["sh", "-c", "exit 2"], expect_exit=2).check()

    assert result.ok


async def test_command_probe_is_killed_at_its_timeout() -> None:
    """A command that outlives the timeout is killed (with its children) and fails."""
    started = time.monotonic()
    result = await CommandProbe(["sh", "-c", "sleep 30 & wait"], timeout_s=0.1).check()

    assert not result.ok
    assert "still running after 0.1 s; killed" in result.detail
    assert time.monotonic() - started < 1.5


async def test_command_probe_missing_command_is_a_result() -> None:
    result = await CommandProbe(["no-such-command-here"]).check()

    assert not result.ok
    assert "cannot run" in result.detail


async def test_probes_run_concurrently_within_their_timeouts(silent_port: int) -> None:
    """Timeouts are per probe and enforced: three hung probes finish together."""
    probes = [HttpProbe(f"http://127.0.0.1:{silent_port}/", timeout_s=0.1) for _ in range(3)]
    started = time.monotonic()
    results = await asyncio.gather(*(p.check() for p in probes))
    for probe in probes:
        await probe.aclose()

    assert [r.ok for r in results] == [False, False, False]
    assert time.monotonic() - started < 0.5


# -- command probes: grandchildren, wall time, env, cwd, output patterns -----------------


@pytest.fixture
async def probe_marker() -> AsyncIterator[dict[str, str]]:
    """An environment that marks what a probe leaves behind, swept after the test."""
    run_id = f"probe-test-{uuid.uuid4().hex[:8]}"
    yield marker_env(run_id, "probe")
    await terminate_marked(run_id, None, 0.0)


async def test_command_probe_does_not_wait_for_a_background_grandchild(
    probe_marker: dict[str, str],
) -> None:
    """The main process exited at once: its output is the answer, whatever still holds stdout."""
    started = time.monotonic()
    probe = CommandProbe(["sh", "-c", "sleep 30 & echo hi"], timeout_s=1.0, env=probe_marker)
    result = await probe.check()

    assert (result.ok, result.value, result.detail) == (True, "hi", "sh: exit status 0")
    assert time.monotonic() - started < 0.5
    await eventually(  # its group was killed
        lambda: not marked_processes(probe_marker[RUN_ID_ENV]), timeout_s=1.0, interval_s=0.005
    )


async def test_command_probe_does_not_wait_for_a_process_that_left_its_session(
    probe_marker: dict[str, str],
) -> None:
    started = time.monotonic()
    result = await CommandProbe(["setsid", "-f", "sleep", "30"], env=probe_marker).check()

    assert (result.ok, result.detail) == (True, "setsid: exit status 0")
    assert time.monotonic() - started < 0.5


async def test_command_probe_timeout_bounds_its_wall_time_with_an_escaped_grandchild(
    probe_marker: dict[str, str],
) -> None:
    started = time.monotonic()
    probe = CommandProbe(
        ["sh", "-c", "setsid -f sleep 30; echo partial; sleep 30"], timeout_s=0.3, env=probe_marker
    )
    result = await probe.check()

    assert not result.ok
    assert result.detail == "sh: still running after 0.3 s; killed"
    assert time.monotonic() - started < 0.6


def test_command_probe_leaves_no_asyncio_tracebacks() -> None:
    """Escaped grandchildren holding the pipes: nothing is left for the closed loop to trip on."""
    run_id = f"probe-test-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent(
        f"""
        import asyncio, gc
        from test_coordinator.runtime.probes import CommandProbe
        env = {marker_env(run_id, "probe")!r}
        async def main():
            for argv, timeout in ((["setsid", "-f", "sleep", "30"], 1.0),
                                  (["sh", "-c", "setsid -f sleep 30; sleep 30"], 0.1)):
                print((await CommandProbe(argv, timeout_s=timeout, env=env).check()).ok)
        asyncio.run(main())
        gc.collect()
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=10
        )
    finally:
        asyncio.run(terminate_marked(run_id, None, 0.0))

    assert done.stdout.split() == ["True", "False"]
    assert done.stderr == ""


async def test_command_probe_env_and_cwd(tmp_path: Path) -> None:
    probe = CommandProbe(
        ["sh", "-c", 'echo "$GREETING from $(pwd)"'], env={"GREETING": "hello"}, cwd=tmp_path
    )

    result = await probe.check()

    assert (result.ok, result.value) == (True, f"hello from {tmp_path}")


async def test_command_probe_matches_stdout_and_stderr() -> None:
    argv = ["sh", "-c", "echo 'role: master'; echo 'warming up' >&2"]
    matching = await CommandProbe(
        argv, expect_stdout=r"role: (master|primary)", expect_stderr="warm"
    ).check()
    wrong_out = await CommandProbe(argv, expect_stdout="^role: replica").check()
    wrong_err = await CommandProbe(argv, expect_stderr="^ready$").check()

    assert (matching.ok, matching.value, matching.detail) == (
        True,
        "role: master",
        "sh: exit status 0",
    )
    assert (wrong_out.ok, wrong_out.value) == (False, "role: master")
    assert wrong_out.detail == "sh: stdout 'role: master' does not match /^role: replica/"
    assert not wrong_err.ok
    assert wrong_err.detail == "sh: stderr 'warming up' does not match /^ready$/"


async def test_command_probe_spec_takes_env_cwd_and_output_patterns() -> None:
    spec = ProbeSpec.model_validate(
        {
            "command": {
                "argv": ["redis-cli", "ping"],
                "env": {"A": 1},
                "cwd": "/tmp",
                "exit": 0,
                "stdout": "^PONG$",
                "stderr": "^$",
            }
        }
    )
    probe = RuntimeProbes().probe(spec)

    assert isinstance(probe, CommandProbe)
    assert (probe.argv, probe.env, probe.cwd) == (("redis-cli", "ping"), {"A": "1"}, Path("/tmp"))
    assert (probe.expect_stdout, probe.expect_stderr, probe.expect_exit) == ("^PONG$", "^$", 0)
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        ProbeSpec.model_validate({"command": {"argv": ["true"], "stdout": "("}})


@pytest.mark.parametrize(
    ("spec", "interval", "ceiling"),
    [
        ({"http": {"url": "http://svc/"}}, 0.003, 0.003),
        ({"http": {"url": "http://svc/"}, "max_every": "100ms"}, 0.003, 0.1),
        ({"command": {"argv": ["pg_isready"]}}, 0.05, 0.2),
        ({"command": {"argv": ["pg_isready"]}, "every": "100ms", "max_every": "1s"}, 0.1, 1.0),
    ],
)
def test_probe_pace_and_back_off_ceiling(
    spec: dict[str, object], interval: float, ceiling: float
) -> None:
    probe = ProbeSpec.model_validate(spec)

    assert (probe.interval(0.003), probe.max_interval(0.003)) == (interval, ceiling)


def test_a_back_off_ceiling_below_the_pace_is_refused() -> None:
    with pytest.raises(
        ValidationError, match="max_every: allowed: a duration no shorter than every"
    ):
        ProbeSpec.model_validate(
            {"http": {"url": "http://svc/"}, "every": "1s", "max_every": "10ms"}
        )
