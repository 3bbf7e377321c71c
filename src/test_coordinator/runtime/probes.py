"""Health probes: HTTP, TCP, gRPC health and a command, each answering a ProbeResult.

A probe never raises for a target that is down, slow or wrong: the failure is a
result with ``ok=False`` and a ``detail`` that says what happened. Every check
is bounded by the probe's ``timeout_s`` (an ``asyncio.timeout`` around the
whole exchange, not only the connect).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from test_coordinator.domain.compare import equal
from test_coordinator.runtime.http_wire import HttpAnswer, HttpWireClient, HttpWireError
from test_coordinator.runtime.json_path import JsonPathError, json_path
from test_coordinator.runtime.os_errors import os_error_reason
from test_coordinator.runtime.probe_result import ProbeResult

if TYPE_CHECKING:
    import grpc.aio

__all__ = [
    "CommandProbe",
    "GrpcHealthProbe",
    "HttpProbe",
    "JsonPathError",
    "Probe",
    "ProbeResult",
    "TcpProbe",
    "json_path",
]

_OUTPUT_TAIL_CHARS = 300


class Probe(Protocol):
    async def check(self) -> ProbeResult: ...


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


class HttpProbe:
    """An HTTP request whose status (and optionally JSON fields) must match.

    ``value`` is the decoded JSON body when the response says it is JSON (or
    the body parses as JSON), else the text. ``json_fields`` maps a JSON path
    (see :func:`json_path`) to the value expected there.

    The probe keeps its connection alive between checks (see
    :mod:`~test_coordinator.runtime.http_wire` for why that measures true);
    ``headers={"Connection": "close"}`` asks for a new connection each time.
    Probes of the same request may share a ``client`` (its owner closes it);
    without one the probe makes its own and :meth:`aclose` closes it.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        expect_status: int | Sequence[int] = 200,
        json_fields: Mapping[str, Any] | None = None,
        timeout_s: float = 1.0,
        headers: Mapping[str, str] | None = None,
        client: HttpWireClient | None = None,
    ) -> None:
        self.url = url
        self.method = method.upper()
        self.expect_status = (
            (expect_status,) if isinstance(expect_status, int) else tuple(expect_status)
        )
        self.json_fields = dict(json_fields or {})
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self._client = client
        self._owns_client = client is None
        self._invalid = ""

    def __repr__(self) -> str:
        return f"HttpProbe({self.method} {self.url})"

    async def check(self) -> ProbeResult:
        started = time.perf_counter()
        client = self._client_or_new()
        if client is None:
            return ProbeResult(False, None, f"{self.url}: {self._invalid}", 0.0)
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await client.request()
        except TimeoutError:
            return ProbeResult(
                False,
                None,
                f"{self.url}: no answer within {self.timeout_s:g} s",
                _elapsed_ms(started),
            )
        except HttpWireError as exc:
            return ProbeResult(False, None, f"{self.url}: {exc}", _elapsed_ms(started))
        latency_ms = _elapsed_ms(started)
        value = _decode_body(answer)
        problems = []
        if answer.status not in self.expect_status:
            wanted = " or ".join(str(s) for s in self.expect_status)
            problems.append(f"status {answer.status}, expected {wanted}")
        problems.extend(_field_problems(value, self.json_fields))
        if problems:
            detail = f"{self.url}: " + "; ".join(problems)
            return ProbeResult(False, value, detail, latency_ms, refused=True)
        return ProbeResult(True, value, f"{self.url}: status {answer.status}", latency_ms)

    async def aclose(self) -> None:
        """Close the kept-alive connections, unless the client is shared."""
        if self._client is not None and self._owns_client:
            self._client.close()

    async def __aenter__(self) -> HttpProbe:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _client_or_new(self) -> HttpWireClient | None:
        if self._client is None and not self._invalid:
            try:
                self._client = HttpWireClient(self.url, method=self.method, headers=self.headers)
            except HttpWireError as exc:
                self._invalid = str(exc)
        return self._client


def _decode_body(answer: HttpAnswer) -> Any:
    content = answer.body
    if "json" in answer.headers.get("content-type", "") or content[:1] in (b"{", b"["):
        try:
            return json.loads(content)
        except ValueError:
            pass
    return _text(content, answer.headers.get("content-type", ""))


def _text(content: bytes, content_type: str) -> str:
    charset = "utf-8"
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        return content.decode(charset, errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def _field_problems(value: Any, fields: Mapping[str, Any]) -> list[str]:
    problems = []
    for path, expected in fields.items():
        try:
            actual = json_path(value, path)
        except JsonPathError as exc:
            problems.append(str(exc))
            continue
        if not equal(expected, actual):
            problems.append(f"{path} is {actual!r}, expected {expected!r}")
    return problems


class TcpProbe:
    """A TCP connect that must succeed; ``value`` is always None.

    A paused (SIGSTOPped) server still completes connects through the kernel's
    accept queue, so use an HTTP or gRPC probe to tell a paused service.
    """

    def __init__(self, host: str, port: int, timeout_s: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s

    async def aclose(self) -> None:
        """Nothing is kept between checks."""

    def __repr__(self) -> str:
        return f"TcpProbe({self.host}:{self.port})"

    async def check(self) -> ProbeResult:
        started = time.perf_counter()
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.timeout_s):
                _, writer = await asyncio.open_connection(self.host, self.port)
                latency_ms = _elapsed_ms(started)
                writer.close()
                await writer.wait_closed()
        except TimeoutError:
            return ProbeResult(
                False,
                None,
                f"{where}: no connection within {self.timeout_s:g} s",
                _elapsed_ms(started),
            )
        except OSError as exc:
            reason = os_error_reason(exc)
            return ProbeResult(
                False, None, f"{where}: cannot connect: {reason}", _elapsed_ms(started)
            )
        return ProbeResult(True, None, f"{where}: connected", latency_ms)


# A channel of its own, not shared through gRPC's global subchannel pool: a new
# channel would otherwise inherit a failed subchannel and its reconnect backoff.
_GRPC_CHANNEL_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 5),
    ("grpc.min_reconnect_backoff_ms", 5),
    ("grpc.max_reconnect_backoff_ms", 50),
)


class GrpcHealthProbe:
    """``grpc.health.v1.Health/Check``; ok when the status is SERVING.

    ``value`` is the status name (``SERVING``, ``NOT_SERVING``, ...) or None when
    the call failed. The channel is kept between checks and dropped after a
    failure, so the next check connects at once instead of waiting out gRPC's
    reconnect backoff (which would add up to seconds to a measured recovery).
    """

    def __init__(self, target: str, service: str = "", timeout_s: float = 1.0) -> None:
        self.target = target
        self.service = service
        self.timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None

    def __repr__(self) -> str:
        return f"GrpcHealthProbe({self.target}, service={self.service!r})"

    async def check(self) -> ProbeResult:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        started = time.perf_counter()
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=_GRPC_CHANNEL_OPTIONS)
        stub = health_pb2_grpc.HealthStub(self._channel)
        request = health_pb2.HealthCheckRequest(service=self.service)
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await stub.Check(request, timeout=self.timeout_s)
        except TimeoutError:
            await self._drop_channel()
            return ProbeResult(
                False,
                None,
                f"{self.target}: no answer within {self.timeout_s:g} s",
                _elapsed_ms(started),
            )
        except grpc.aio.AioRpcError as exc:
            await self._drop_channel()
            detail = f"{self.target}: gRPC {exc.code().name}: {exc.details() or ''}".rstrip(": ")
            return ProbeResult(False, None, detail, _elapsed_ms(started))
        latency_ms = _elapsed_ms(started)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        ok = response.status == health_pb2.HealthCheckResponse.SERVING
        if not ok:
            return ProbeResult(
                False, status, f"{self.target}: {status}, expected SERVING", latency_ms, True
            )
        return ProbeResult(True, status, f"{self.target}: SERVING", latency_ms)

    async def aclose(self) -> None:
        await self._drop_channel()

    async def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close(grace=None)


class CommandProbe:
    """A command that must exit with ``expect_exit`` (and whose stdout and stderr must match
    ``expect_stdout`` / ``expect_stderr``, regular expressions searched anywhere, when
    given); ``value`` is its stdout, stripped.

    It runs in a session and process group of its own. Its answer is in once the
    command itself has exited: what is left of its group is killed then, and the
    output already written is read without waiting for an end of file that a
    grandchild which left the group (``setsid``) may hold back. At ``timeout_s``
    the whole group is killed: the timeout bounds the probe's wall time.
    """

    def __init__(
        self,
        argv: Sequence[str],
        timeout_s: float = 5.0,
        expect_exit: int = 0,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        expect_stdout: str | None = None,
        expect_stderr: str | None = None,
    ) -> None:
        if not argv:
            raise ValueError("CommandProbe needs a command")
        self.argv = tuple(argv)
        self.timeout_s = timeout_s
        self.expect_exit = expect_exit
        self.env = dict(env or {})
        self.cwd = cwd
        self.expect_stdout = expect_stdout
        self.expect_stderr = expect_stderr

    async def aclose(self) -> None:
        """Nothing is kept between checks."""

    def __repr__(self) -> str:
        return f"CommandProbe({' '.join(self.argv)})"

    async def check(self) -> ProbeResult:
        started = time.perf_counter()
        name = self.argv[0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            transport, output = await loop.subprocess_exec(
                lambda: _CommandOutput(loop),
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **self.env} if self.env else None,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return ProbeResult(False, None, f"{name}: cannot run: {exc}", _elapsed_ms(started))
        try:
            await asyncio.wait([output.exited], timeout=max(deadline - loop.time(), 0.0))
            _kill_group(transport.get_pid())
            if not output.exited.done():
                await asyncio.wait([output.exited], timeout=_REAP_WAIT_S)
                return ProbeResult(
                    False,
                    None,
                    f"{name}: still running after {self.timeout_s:g} s; killed",
                    _elapsed_ms(started),
                )
            await output.drained(min(loop.time() + _DRAIN_MAX_S, deadline))
        except BaseException:
            _kill_group(transport.get_pid())
            if not output.exited.done():
                await asyncio.wait([output.exited], timeout=_REAP_WAIT_S)
            raise
        finally:
            transport.close()
        return self._judge(name, transport.get_returncode(), output, _elapsed_ms(started))

    def _judge(
        self, name: str, code: int | None, output: _CommandOutput, latency_ms: float
    ) -> ProbeResult:
        stdout = output.text(1)
        stderr = output.text(2)
        value = stdout.strip()
        if code != self.expect_exit:
            err = stderr.strip()[-_OUTPUT_TAIL_CHARS:]
            detail = f"{name}: exit status {code}, expected {self.expect_exit}"
            detail += f"; stderr: {err}" if err else ""
            return ProbeResult(False, value, detail, latency_ms, refused=True)
        problems = [
            f"{stream} {text.strip()[:_OUTPUT_TAIL_CHARS]!r} does not match /{pattern}/"
            for stream, text, pattern in (
                ("stdout", stdout, self.expect_stdout),
                ("stderr", stderr, self.expect_stderr),
            )
            if pattern is not None and re.search(pattern, text) is None
        ]
        if problems:
            detail = f"{name}: " + "; ".join(problems)
            return ProbeResult(False, value, detail, latency_ms, refused=True)
        return ProbeResult(True, value, f"{name}: exit status {code}", latency_ms)


_REAP_WAIT_S = 1.0
"""How long a killed command may take to be reaped."""
_DRAIN_MAX_S = 0.1
"""After the command exited, how long its output may keep arriving (while a grandchild
that left its group holds the pipes open)."""
_QUIET_S = 0.01
"""After the command exited, no new output for this long: all it wrote has been read."""


class _CommandOutput(asyncio.SubprocessProtocol):
    """Collects a command's stdout and stderr; tells when it exited and when both pipes closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._output = {1: bytearray(), 2: bytearray()}
        self._open = {1, 2}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._loop = loop

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self._output[fd] += data

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def text(self, fd: int) -> str:
        return self._output[fd].decode("utf-8", "replace")

    async def drained(self, until: float) -> None:
        """Until both pipes are closed, or no output arrived for ``_QUIET_S``: at least one
        such wait, and none that starts after ``until`` (the loop's clock)."""
        wait = _QUIET_S
        while not self.closed.done() and wait > 0:
            received = self._received()
            await asyncio.wait([self.closed], timeout=wait)
            if self._received() == received:
                return
            wait = min(_QUIET_S, until - self._loop.time())

    def _received(self) -> int:
        return len(self._output[1]) + len(self._output[2])


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of the command's process group (its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
