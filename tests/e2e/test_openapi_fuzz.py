"""Schemathesis against the service's own OpenAPI document: every operation, generated
requests (valid and not), links followed from a submitted run; no server error, no answer
that the document does not describe."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.service_process import ServiceProcess, start_service

pytestmark = pytest.mark.slow

TOKEN = "fuzz-token"
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)

# The names the OpenAPI examples use, as cheap scenarios: a run observes the service itself.
OBSERVING = """
version: 1
name: {name}
vars: {{hold: 10ms, url: "http://127.0.0.1:1/"}}
services:
  observed:
    health: {{http: {{url: "${{url}}"}}}}
steps:
  - wait: ${{hold}}
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    library = tmp_path / "library"
    library.mkdir()
    for name in ("exchange-restart-during-trading", "exchange-pause"):
        (library / f"{name}.yaml").write_text(OBSERVING.format(name=name))
    svc = start_service(
        tmp_path / "svc",
        {
            "SCENARIO_DIR": str(library),
            "REPORTS_DIR": str(tmp_path / "reports"),
            "API_TOKEN": TOKEN,
            "MAX_QUEUED_RUNS": "1000",
        },
    )
    yield svc
    svc.stop(timeout_s=30)


def test_every_operation_answers_as_its_document_says(
    service: ServiceProcess, tmp_path: Path
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a dev dependency (pip install -e '.[dev]')"
    done = subprocess.run(
        [
            st, "run", f"{service.base_url}/openapi.json",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--checks", CHECKS,
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", "40",
            "--request-timeout", "20",
            "--no-color",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip

    report = done.stdout + done.stderr
    assert 0 == done.returncode, report[-6000:]
    assert "Tested: 14" in report, report[-3000:]  # every operation
    assert "Traceback" not in service.log()
