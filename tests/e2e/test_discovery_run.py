"""``test-coordinator run`` on a scenario that discovers its target: a small HTTP server,
registered in Redis as ``services:exchange-simulator:<instance>``, is found and probed on the
port the registry gives; once deregistered, the run is refused with exit 2 and the reason."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from e2e.cli_harness import Cli
from test_coordinator.adapters.redis_client import redis_client
from test_coordinator.adapters.registry import RedisServiceRegistry
from test_coordinator.ports.registry import ServiceRecord

pytestmark = [pytest.mark.slow, pytest.mark.redis]

SERVICE = "exchange-simulator"

HEALTH_SERVER = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/api/v1/health":
                self.send_error(404)
                return
            body = json.dumps({"status": "healthy", "service": "exchange-simulator"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)

SCENARIO = """\
version: 1
name: discovered-exchange
timeout: 30s
services:
  exchange:
    discover: {{service: {service}, instance: {instance}}}
steady_state:
  - healthy: exchange
steps:
  - name: the exchange answers on the port the registry gives
    expect:
      http:
        url: "http://127.0.0.1:${{exchange.http_port}}/api/v1/health"
        json: {{status: healthy}}
      within: 5s
"""


@pytest.fixture
def health_server() -> Iterator[int]:
    """The port of a small HTTP server answering /api/v1/health with status healthy."""
    with subprocess.Popen(
        [sys.executable, "-c", HEALTH_SERVER], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            yield int(process.stdout.readline())
        finally:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[RedisServiceRegistry]:
    registry = RedisServiceRegistry(redis_client(redis_url), owns_client=True)
    yield registry
    await registry.close()


def record(instance: str, port: int) -> ServiceRecord:
    return ServiceRecord(
        service=SERVICE,
        instance=instance,
        host="127.0.0.1",
        http_port=port,
        grpc_port=port,
        version="1.0.0",
        environment="testing",
        status="healthy",
        timestamp="2025-10-07T12:34:56.000Z",
    )


async def test_a_discovered_target_is_run_and_a_missing_one_refused(
    cli: Cli,
    redis_url: str,
    health_server: int,
    registry: RedisServiceRegistry,
    tmp_path: Path,
) -> None:
    instance = f"exchange-E2e{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "discovered.yaml"
    scenario.write_text(SCENARIO.format(service=SERVICE, instance=instance))
    cli.env["REDIS_URL"] = redis_url  # the registry's keys are global: services:{service}:*
    reports = tmp_path / "reports"

    await registry.register(record(instance, health_server))
    passed = await asyncio.to_thread(cli.run, "run", str(scenario), "--reports-dir", str(reports))

    assert passed.returncode == 0, passed.stdout + passed.stderr
    (journal,) = reports.glob("*/journal.json")
    variables = json.loads(journal.read_text()).get("variables", {})
    assert variables.get("exchange.http_port") == health_server

    await registry.deregister()
    refused = await asyncio.to_thread(cli.run, "run", str(scenario), "--reports-dir", str(reports))

    output = refused.stdout + refused.stderr
    assert refused.returncode == 2, output
    assert "cannot run discovered-exchange" in output
    assert (
        f"{scenario}:6:55: services.exchange.discover.instance: no instance {instance} in the "
        f"registry at redis://" in output
    )
    assert f"(key services:{SERVICE}:{instance})" in output
