"""HttpProbe latency against a server that writes headers and body separately.

Python's http.server (HTTP/1.1, unbuffered wfile) sends the headers, then the body;
Nagle holds the body until the headers are ACKed. On a reused keep-alive
connection the client's kernel delays that ACK (40 ms on Linux), so each check
took 44 ms. The probe keeps its connection and asks for quick ACKs (TCP_QUICKACK)
after each request and each piece of the answer.
"""

from __future__ import annotations

import http.server
import statistics
import threading
from collections.abc import Iterator

import pytest

from test_coordinator.runtime.probes import HttpProbe

pytestmark = pytest.mark.slow

DELAYED_ACK_MS = 40.0


class _TwoWritesHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # first write: the status line and headers
        self.wfile.write(body)  # second write: the body

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def two_writes_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TwoWritesHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def _median_latency_ms(probe: HttpProbe, checks: int = 20) -> float:
    latencies = []
    for _ in range(checks):
        result = await probe.check()
        assert result.ok, result.detail
        assert result.value == {"status": "ok"}
        latencies.append(result.latency_ms)
    return statistics.median(latencies)


async def test_kept_alive_probe_is_not_held_by_delayed_ack(two_writes_url: str) -> None:
    async with HttpProbe(two_writes_url, timeout_s=2.0) as probe:
        median = await _median_latency_ms(probe)
    assert median < 10.0, f"median {median:.1f} ms: held by the {DELAYED_ACK_MS:g} ms delayed ACK"


async def test_new_connection_probe_is_not_held_by_delayed_ack(two_writes_url: str) -> None:
    async with HttpProbe(two_writes_url, timeout_s=2.0, headers={"Connection": "close"}) as probe:
        median = await _median_latency_ms(probe)
    assert median < 10.0, f"median {median:.1f} ms: held by the {DELAYED_ACK_MS:g} ms delayed ACK"
