"""The probes' HTTP client: keep-alive that measures true, stale connections, bounded answers."""

from __future__ import annotations

import asyncio

import pytest

from support.canned_http import Answer, canned_server, http_answer
from support.polling import eventually
from test_coordinator.runtime import http_wire
from test_coordinator.runtime.http_wire import HttpTarget, HttpWireClient, HttpWireError
from test_coordinator.runtime.ports_alloc import free_port

OK = http_answer(200, {"status": "ok"})


async def test_requests_reuse_one_connection() -> None:
    async with canned_server(lambda _: OK) as server:
        client = HttpWireClient(f"{server.url}/health")
        answers = [await client.request() for _ in range(5)]
        client.close()

    assert [a.status for a in answers] == [200] * 5
    assert answers[0].body == b'{"status": "ok"}'
    assert server.connections == 1
    assert len(server.requests) == 5


async def test_the_request_names_the_host_and_path() -> None:
    async with canned_server(lambda _: OK) as server:
        client = HttpWireClient(f"{server.url}/ready?deep=1", method="head")
        await client.request()
        client.close()

    head = server.requests[0].decode()
    assert head.startswith("HEAD /ready?deep=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head


async def test_a_connection_closed_by_the_server_is_replaced_within_the_request() -> None:
    """A restart kills the kept connection: the next request gets a new one, not an error."""
    async with canned_server(lambda _: OK) as server:
        client = HttpWireClient(server.url)
        await client.request()
        server.drop_connections()
        answer = await client.request()
        client.close()

    assert answer.status == 200
    assert server.connections == 2


async def test_connection_close_asks_for_a_new_connection_each_time() -> None:
    async with canned_server(lambda _: OK) as server:
        client = HttpWireClient(server.url, headers={"Connection": "close"})
        for _ in range(3):
            await client.request()
        client.close()

    assert server.connections == 3


@pytest.mark.parametrize(
    ("answer", "reused"),
    [
        (http_answer(200, "x", close=True), False),
        (http_answer(200, "x", version="HTTP/1.0"), False),
        (http_answer(200, "x", version="HTTP/1.0", headers=[("Connection", "keep-alive")]), True),
    ],
    ids=["connection-close", "http-1.0", "http-1.0-keep-alive"],
)
async def test_a_connection_is_reused_only_when_the_server_keeps_it(
    answer: Answer, reused: bool
) -> None:
    async with canned_server(lambda _: answer) as server:
        client = HttpWireClient(server.url)
        await client.request()
        await client.request()
        client.close()

    assert server.connections == (1 if reused else 2)


async def test_headers_and_body_in_separate_writes_are_joined() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"
    async with canned_server(lambda _: Answer([head, b"hello", b" world"])) as server:
        client = HttpWireClient(server.url)
        answer = await client.request()
        client.close()

    assert answer.body == b"hello world"


async def test_a_chunked_body_is_decoded() -> None:
    chunks = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n",
        b"6;ext=1\r\n world\r\n0\r\n\r\n",
    ]
    async with canned_server(lambda _: Answer(chunks)) as server:
        client = HttpWireClient(server.url)
        first = await client.request()
        second = await client.request()
        client.close()

    assert first.body == second.body == b"hello world"
    assert server.connections == 1


async def test_a_body_without_length_runs_to_the_close() -> None:
    answer = Answer([b"HTTP/1.1 200 OK\r\n\r\nall of it"], close=True)
    async with canned_server(lambda _: answer) as server:
        client = HttpWireClient(server.url)
        result = await client.request()
        client.close()

    assert result.body == b"all of it"


async def test_an_interim_continue_is_skipped() -> None:
    answer = Answer([b"HTTP/1.1 100 Continue\r\n\r\n", OK.chunks[0]])
    async with canned_server(lambda _: answer) as server:
        client = HttpWireClient(server.url)
        result = await client.request()
        client.close()

    assert result.status == 200


async def test_a_body_over_the_limit_is_refused() -> None:
    answer = http_answer(200, b"x" * 2048, content_type="text/plain")
    async with canned_server(lambda _: answer) as server:
        client = HttpWireClient(server.url, max_body=1024)
        with pytest.raises(HttpWireError, match="body of 2048 bytes, more than 1024"):
            await client.request()
        client.close()


async def test_endless_headers_are_refused() -> None:
    answer = Answer([b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 20000])
    async with canned_server(lambda _: answer) as server:
        client = HttpWireClient(server.url)
        with pytest.raises(HttpWireError, match="headers longer than"):
            await client.request()
        client.close()


async def test_a_server_that_closes_without_answering_is_an_error_on_a_new_connection() -> None:
    async with canned_server(lambda _: Answer([], close=True)) as server:
        client = HttpWireClient(server.url)
        with pytest.raises(HttpWireError, match="closed by the server"):
            await client.request()
        client.close()

    assert server.connections == 1


async def test_a_refused_connection_says_so() -> None:
    client = HttpWireClient(f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(HttpWireError, match="cannot connect: Connection refused"):
        await client.request()


async def test_a_timed_out_exchange_does_not_leave_its_connection_for_the_next() -> None:
    answers = iter([Answer([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart"]), OK])
    async with canned_server(lambda _: next(answers)) as server:
        client = HttpWireClient(server.url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.request()
        answer = await client.request()
        client.close()

    assert answer.body == b'{"status": "ok"}'
    assert server.connections == 2


async def test_an_idle_connection_is_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_wire, "IDLE_CLOSE_S", 0.01)
    async with canned_server(lambda _: OK) as server:
        client = HttpWireClient(server.url)
        await client.request()
        assert client.open_connections == 1
        await eventually(
            lambda: client.open_connections == 0, timeout_s=2.0, what="idle connection closed"
        )
        await client.request()
        client.close()

    assert server.connections == 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://svc/health", HttpTarget("http", "svc", 80, "/health", "svc")),
        ("https://svc", HttpTarget("https", "svc", 443, "/", "svc")),
        ("http://[::1]:8080/a?b=c", HttpTarget("http", "::1", 8080, "/a?b=c", "[::1]:8080")),
    ],
)
def test_urls_are_parsed_once(url: str, expected: HttpTarget) -> None:
    assert HttpTarget.parse(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://svc/", "unsupported URL scheme 'ftp'"),
        ("http:///path", "no host"),
        ("http://svc:99999/", "invalid URL"),
    ],
)
def test_bad_urls_are_errors(url: str, message: str) -> None:
    with pytest.raises(HttpWireError, match=message):
        HttpTarget.parse(url)


async def test_overlapping_requests_each_get_a_connection_and_both_are_kept() -> None:
    async with canned_server(lambda _: OK) as server:
        client = HttpWireClient(server.url)
        first, second = await asyncio.gather(client.request(), client.request())
        again = await asyncio.gather(client.request(), client.request())
        client.close()

    assert [a.status for a in (first, second, *again)] == [200] * 4
    assert server.connections == 2
    assert client.open_connections == 0
