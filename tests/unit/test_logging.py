"""Structured logging: identity on every line, JSON or console, no URL passwords."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
import uvicorn

from test_coordinator.config import Settings, load_settings
from test_coordinator.infrastructure.logging import (
    UVICORN_LOGGERS,
    configure_logging,
    get_logger,
    redact_url_passwords,
    uvicorn_logging_options,
)

INSTANCE = "test-coordinator-Chaos1"
IDENTITY = {
    "service_name": "test-coordinator",
    "instance_name": INSTANCE,
    "environment": "docker",
}
# uvicorn's own access-log call: logger.info(format, client, method, path, version, status)
UVICORN_ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "service_name": "test-coordinator",
        "service_instance_name": INSTANCE,
        "environment": "docker",
        "log_level": "INFO",
    }
    return load_settings(**(values | overrides))


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test configures logging from scratch and leaves the process as it found it."""
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved_named = {
        name: (lg.handlers[:], lg.propagate, lg.level, lg.disabled)
        for name in (*UVICORN_LOGGERS, "alembic")
        for lg in [logging.getLogger(name)]
    }
    yield
    structlog.reset_defaults()
    root.handlers[:], root.level = saved_root
    for name, (handlers, propagate, level, disabled) in saved_named.items():
        lg = logging.getLogger(name)
        lg.handlers[:], lg.propagate, lg.level, lg.disabled = handlers, propagate, level, disabled


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def configured(**overrides: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(make_settings(**overrides), stream=stream)
    return stream


class TestIdentity:
    def test_our_lines_are_json_with_identity_in_docker(self) -> None:
        """A structlog line in docker is one JSON object with identity, level and logger."""
        stream = configured()

        get_logger("test_coordinator.runs").info("run started", run_id="r-1")

        [line] = json_lines(stream)
        assert IDENTITY.items() <= line.items()
        assert (line["event"], line["run_id"]) == ("run started", "r-1")
        assert (line["level"], line["logger"]) == ("info", "test_coordinator.runs")
        assert line["timestamp"].endswith("Z")

    @pytest.mark.parametrize(
        "name", ["some.library", "uvicorn.error", "grpc._cython.cygrpc", "sqlalchemy.pool"]
    )
    def test_foreign_lines_carry_identity(self, name: str) -> None:
        """Lines from plain stdlib loggers (libraries, uvicorn, grpc) are structured too."""
        stream = configured()

        logging.getLogger(name).warning("disk %s", "full")

        [line] = json_lines(stream)
        assert IDENTITY.items() <= line.items()
        assert ("disk full", "warning", name) == (line["event"], line["level"], line["logger"])

    def test_identity_on_lines_from_other_threads(self) -> None:
        """Identity is added when rendering, so a worker thread's lines carry it too."""
        stream = configured()
        worker = threading.Thread(target=lambda: get_logger("worker").info("in a thread"))

        worker.start()
        worker.join(timeout=5)

        [line] = json_lines(stream)
        assert IDENTITY.items() <= line.items()

    def test_context_variables_reach_foreign_lines(self) -> None:
        """Values bound with structlog.contextvars appear on a library's line as well."""
        stream = configured()
        structlog.contextvars.bind_contextvars(run_id="r-7")
        try:
            logging.getLogger("some.library").info("step")
        finally:
            structlog.contextvars.clear_contextvars()

        [line] = json_lines(stream)
        assert line["run_id"] == "r-7"

    def test_logger_taken_before_configuration_follows_it(self) -> None:
        """A module-level logger created before configure_logging() still renders through it."""
        early = get_logger("test_coordinator.early")
        stream = configured()

        early.info("after configuration")

        [line] = json_lines(stream)
        assert IDENTITY.items() <= line.items()


class TestUvicorn:
    def test_access_lines_are_structured_with_request_fields(self) -> None:
        """With our uvicorn options, an access line is JSON with identity and request fields."""
        stream = configured()
        uvicorn.Config(app=_empty_app, **uvicorn_logging_options(access_log=True))

        logging.getLogger("uvicorn.access").info(
            UVICORN_ACCESS_FORMAT, "127.0.0.1:50000", "GET", "/api/v1/health", "1.1", 200
        )

        [line] = json_lines(stream)
        assert IDENTITY.items() <= line.items()
        assert {
            "client": "127.0.0.1:50000",
            "method": "GET",
            "path": "/api/v1/health",
            "http_version": "1.1",
            "status": 200,
            "logger": "uvicorn.access",
        }.items() <= line.items()

    def test_uvicorn_options_add_no_handlers_of_their_own(self) -> None:
        """uvicorn's loggers keep propagating to our handler, so lines are never doubled."""
        stream = configured()
        uvicorn.Config(app=_empty_app, **uvicorn_logging_options(access_log=True))

        logging.getLogger("uvicorn.error").info("Started server process")

        assert all(not logging.getLogger(name).handlers for name in UVICORN_LOGGERS)
        assert len(json_lines(stream)) == 1

    @pytest.mark.slow
    async def test_real_server_writes_structured_access_lines(self) -> None:
        """A request served by uvicorn leaves one structured access line with identity."""
        stream = configured()
        server = uvicorn.Server(
            uvicorn.Config(
                app=_empty_app,
                host="127.0.0.1",
                port=0,
                lifespan="off",
                **uvicorn_logging_options(access_log=True),
            )
        )
        serving = asyncio.create_task(server.serve())
        try:
            port = await _bound_port(server, serving)
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"http://127.0.0.1:{port}/api/v1/health?probe=1")
            assert response.status_code == 204
            access = await _access_line(stream)
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=5)

        assert IDENTITY.items() <= access.items()
        assert (
            access["method"],
            access["path"],
            access["status"],
        ) == ("GET", "/api/v1/health?probe=1", 204)


class TestRendering:
    def test_console_lines_outside_docker_without_colours(self) -> None:
        """Development gets key=value console lines, and no colour codes when not a TTY."""
        stream = configured(environment="development")

        get_logger("test_coordinator.runs").info("run started", run_id="r-1")

        text = stream.getvalue()
        assert "run started" in text
        assert f"instance_name={INSTANCE}" in text
        assert "environment=development" in text
        assert "run_id=r-1" in text
        assert "\x1b[" not in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)

    def test_level_from_settings_applies_to_all_loggers(self) -> None:
        """Below LOG_LEVEL nothing is written, whichever logger it comes from."""
        stream = configured(log_level="WARNING")

        get_logger("test_coordinator.runs").info("quiet")
        logging.getLogger("some.library").info("quiet too")
        get_logger("test_coordinator.runs").warning("loud")

        assert [line["event"] for line in json_lines(stream)] == ["loud"]

    def test_alembic_says_how_it_set_itself_up_only_when_debugging(self) -> None:
        stream = configured()
        logging.getLogger("alembic.runtime.migration").info("Will assume transactional DDL.")
        logging.getLogger("alembic.runtime.migration").warning("a real problem")
        debugging = configured(log_level="DEBUG")
        logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")

        assert ["a real problem"] == [line["event"] for line in json_lines(stream)]
        assert ["Context impl PostgresqlImpl."] == [line["event"] for line in json_lines(debugging)]

    def test_configuring_twice_keeps_one_handler(self) -> None:
        """A second configure_logging() replaces the first: each line is written once."""
        first = configured()
        second = configured(environment="production")

        logging.getLogger("some.library").warning("once")

        assert first.getvalue() == ""
        [line] = json_lines(second)
        assert line["environment"] == "production"

    def test_exceptions_are_rendered_in_the_line(self) -> None:
        """log.exception() puts the traceback into the JSON object, not on extra lines."""
        stream = configured()
        try:
            raise ValueError("bad scenario")
        except ValueError:
            get_logger("test_coordinator.runs").exception("run failed")

        [line] = json_lines(stream)
        assert "ValueError: bad scenario" in line["exception"]


class TestPasswordRedaction:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("postgresql+asyncpg://app:s3cret@db:5432/x", "postgresql+asyncpg://app:***@db:5432/x"),
            ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
            ("at amqp://u:p@ss@mq/ and http://a:b@c", "at amqp://u:***@mq/ and http://a:***@c"),
            ("smtp://me@example.com:pw@mail", "smtp://me@example.com:***@mail"),
            ("http://host:8080/path?mail=a@b", "http://host:8080/path?mail=a@b"),
            ("redis://localhost:6379/0", "redis://localhost:6379/0"),
            ("no url here: user:pw@host", "no url here: user:pw@host"),
        ],
    )
    def test_redact_url_passwords(self, text: str, expected: str) -> None:
        """Only the password of scheme://user:password@host is masked; other text stays."""
        assert expected == redact_url_passwords(text)

    def test_our_event_and_values_are_masked(self) -> None:
        """Passwords vanish from the event text, string values and nested values."""
        stream = configured()

        get_logger("test_coordinator.storage").info(
            "connecting to postgresql://app:s3cret@db:5432/x",
            url="redis://:hunter2@redis:6379/0",
            targets={"queue": ["amqp://u:p4ss@mq/"]},
        )

        text = stream.getvalue()
        assert not any(secret in text for secret in ("s3cret", "hunter2", "p4ss"))
        [line] = json_lines(stream)
        assert line["event"] == "connecting to postgresql://app:***@db:5432/x"
        assert line["url"] == "redis://:***@redis:6379/0"
        assert line["targets"] == {"queue": ["amqp://u:***@mq/"]}

    def test_foreign_lines_are_masked(self) -> None:
        """A library formatting a URL into its message does not leak the password."""
        stream = configured(environment="development")

        logging.getLogger("sqlalchemy.pool").warning(
            "cannot reach %s", "postgresql://postgres:pw123@db/test"
        )

        text = stream.getvalue()
        assert "pw123" not in text
        assert "postgresql://postgres:***@db/test" in text

    def test_exception_text_is_masked(self) -> None:
        """A URL in an exception message is masked in the rendered traceback."""
        stream = configured(environment="development")
        try:
            raise ConnectionError("cannot connect to redis://:topsecret@cache:6379")
        except ConnectionError:
            logging.getLogger("redis").exception("lost the connection")

        text = stream.getvalue()
        assert "topsecret" not in text
        assert "redis://:***@cache:6379" in text

    def test_objects_rendered_by_repr_are_masked(self) -> None:
        """Values that are neither strings nor containers are masked in what gets shown."""
        stream = configured()

        get_logger("test_coordinator.storage").info("bad", error=ValueError("http://u:zz9@h"))

        assert "zz9" not in stream.getvalue()


async def _empty_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _bound_port(server: uvicorn.Server, serving: asyncio.Task[None]) -> int:
    deadline = time.monotonic() + 5
    while not server.started:
        assert not serving.done(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 5 s"
        await asyncio.sleep(0.005)
    return int(server.servers[0].sockets[0].getsockname()[1])


async def _access_line(stream: io.StringIO) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        access = [line for line in json_lines(stream) if line["logger"] == "uvicorn.access"]
        if access:
            [line] = access
            return line
        assert time.monotonic() < deadline, "no access line within 5 s"
        await asyncio.sleep(0.005)
