"""The committed gRPC code is what scripts/gen-proto.sh makes of the committed .proto, and
it imports as part of the package."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_coordinator.grpc_api.v1 import test_coordinator_pb2 as pb
from test_coordinator.grpc_api.v1 import test_coordinator_pb2_grpc as pb_grpc
from test_coordinator.ports.storage import RunStatus

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "src" / "test_coordinator" / "grpc_api" / "v1"
FILES = ("test_coordinator_pb2.py", "test_coordinator_pb2.pyi", "test_coordinator_pb2_grpc.py")


def test_the_committed_code_is_up_to_date(tmp_path: Path) -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        message = "grpcio-tools is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
        pytest.skip(message)

    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-proto.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=120,
    )

    stale = [
        name for name in FILES if (tmp_path / name).read_bytes() != (GENERATED / name).read_bytes()
    ]
    assert not stale, f"run scripts/gen-proto.sh and commit what it writes: {stale} differ"


def test_the_generated_modules_are_package_modules() -> None:
    assert pb.Run.__module__ == "test_coordinator.grpc_api.v1.test_coordinator_pb2"
    assert pb.DESCRIPTOR.name == "test_coordinator/v1/test_coordinator.proto"
    stub_source = (GENERATED / "test_coordinator_pb2_grpc.py").read_text()
    assert "\nfrom test_coordinator.grpc_api.v1 import test_coordinator_pb2 as " in stub_source
    assert pb_grpc.TestCoordinatorStub.__module__ == pb_grpc.__name__
    service = pb.DESCRIPTOR.services_by_name["TestCoordinator"]
    assert service.full_name == "test_coordinator.v1.TestCoordinator"
    assert [m.name for m in service.methods] == [
        "StartRun",
        "GetRun",
        "ListRuns",
        "CancelRun",
        "WatchRun",
        "ListScenarios",
        "ValidateScenario",
    ]


def test_the_run_status_enum_mirrors_the_stores() -> None:
    names = [v.name for v in pb.RunStatus.DESCRIPTOR.values if v.number != 0]
    assert names == [f"RUN_STATUS_{status.name}" for status in RunStatus]
    assert pb.RunStatus.Value("RUN_STATUS_UNSPECIFIED") == 0
