"""The docker backend when no engine answers: what it says, and what it does not owe."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_coordinator.scenario.inventory import DockerRun
from test_coordinator.targets.docker.backend import DockerBackend
from test_coordinator.targets.port import RunScope, TargetError, TargetSpec


def backend(tmp_path: Path) -> DockerBackend:
    run = DockerRun.model_validate({"image": "localhost/tc-httpd:latest"})
    spec = TargetSpec("web", "docker", run.model_dump(mode="json", exclude_none=True))
    return DockerBackend({"web": spec}, RunScope("offline-run", tmp_path))


async def test_a_run_that_never_reached_the_engine_owes_no_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its create never left the coordinator: the removal registered before it is done at
    once, instead of failing every later recover until an engine answers."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    offline = backend(tmp_path)
    try:
        with pytest.raises(TargetError, match="cannot reach the Docker engine") as failed:
            await offline.start("web")
        assert failed.value.infrastructure

        done = await offline.remove("web")
    finally:
        await offline.close()

    assert "no container to remove: the run never reached the Docker engine" in done


@pytest.mark.parametrize("adopted", [False, True])
async def test_a_recovery_that_cannot_reach_the_engine_owes_the_removal_still(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adopted: bool
) -> None:
    """A recovery does not know what the crashed run created: it says it cannot remove.
    (A removal is recorded before the container exists, so its record has no handle to
    adopt: the guard's backend meets it fresh.)"""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    recovering = backend(tmp_path)
    if adopted:
        recovering.adopt("web", {"id": None, "name": None, "started_at": None})
    try:
        with pytest.raises(TargetError, match="cannot reach the Docker engine"):
            await recovering.remove("web")
    finally:
        await recovering.close()
