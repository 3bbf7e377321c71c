"""The docker backend against a real engine (Docker, or Podman's Docker API): no fakes.

Needs the local images from ``scripts/docker-engine.sh`` (never pulled):
``localhost/tc-httpd:latest`` (busybox httpd on 8080, ``/api/v1/health``) and
``localhost/tc-busybox:latest``. Every test removes what it created.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.scenario.inventory import DockerRun
from test_coordinator.targets.docker.backend import (
    RUN_LABEL,
    SERVICE_LABEL,
    DockerBackend,
    run_containers,
)
from test_coordinator.targets.port import RunScope, TargetError, TargetSpec, TargetState

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HTTPD = "localhost/tc-httpd:latest"
BUSYBOX = "localhost/tc-busybox:latest"
TEST_LABEL = "test-coordinator.test"
"""Marks the containers a test creates itself (the 'existing' ones)."""


# -- helpers ---------------------------------------------------------------


def docker_run(**fields: Any) -> DockerRun:
    """A ``docker:`` section as a scenario spells it (``stop_grace="1s"``), validated."""
    return DockerRun.model_validate(fields)


def docker_specs(**services: DockerRun) -> dict[str, TargetSpec]:
    return {
        name: TargetSpec(name, "docker", run.model_dump(mode="json"))
        for name, run in services.items()
    }


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], what: str, deadline_s: float = 10.0
) -> None:
    """Poll ``check`` until it is true; fail past the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {deadline_s:g} s: {what}")
        await asyncio.sleep(0.02)


async def healthy(http: httpx.AsyncClient, port: int, timeout_s: float = 1.0) -> bool:
    try:
        response = await http.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json() == {"status": "healthy"}


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, message
    return message


# -- fixtures --------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk(docker_host: str) -> Iterator[Any]:
    """The test's own client (for what the backend must not do for it)."""
    import docker

    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def run_id(sdk: Any) -> Iterator[str]:
    """A fresh run id; afterwards, whatever still carries it (or the test's label) is removed."""
    rid = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield rid
    finally:
        for label in (f"{RUN_LABEL}={rid}", f"{TEST_LABEL}={rid}"):
            for container in sdk.containers.list(all=True, filters={"label": label}):
                container.remove(force=True)


@pytest.fixture
def scope(tmp_path: Path, run_id: str) -> RunScope:
    return RunScope(run_id=run_id, log_dir=tmp_path / "logs")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


# -- tests -----------------------------------------------------------------


async def test_created_container_start_pause_resume_restart_kill_remove(
    scope: RunScope, run_id: str, sdk: Any, http: httpx.AsyncClient
) -> None:
    port = free_port()
    specs = docker_specs(
        api=docker_run(image=HTTPD, ports={"8080": port}, labels={"team": "qa"}, stop_grace="1s")
    )
    backend = DockerBackend(specs, scope)
    try:
        assert backend.owns("api")
        assert backend.state("api") is TargetState.NOT_STARTED
        assert backend.identity("api") is None

        first = await backend.start("api")
        assert backend.state("api") is TargetState.RUNNING
        assert backend.identity("api") == first
        assert run_containers(run_id) == [f"tc-{run_id}-api"]
        attrs = sdk.api.inspect_container(f"tc-{run_id}-api")
        labels = attrs["Config"]["Labels"]
        assert (labels[RUN_LABEL], labels[SERVICE_LABEL], labels["team"]) == (run_id, "api", "qa")
        ulimits = {
            u["Name"].lower().removeprefix("rlimit_") for u in attrs["HostConfig"]["Ulimits"]
        }
        assert ulimits >= {"nofile", "nproc"}  # Podman says RLIMIT_NOFILE
        bindings = attrs["HostConfig"]["PortBindings"]["8080/tcp"]
        assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", str(port))]
        await eventually(lambda: healthy(http, port), "healthy through the published port")

        await backend.pause("api")
        assert backend.state("api") is TargetState.PAUSED
        assert backend.identity("api") == first
        assert not await healthy(http, port, timeout_s=0.3)

        await backend.resume("api")
        assert backend.state("api") is TargetState.RUNNING
        await eventually(lambda: healthy(http, port), "healthy again after resume")

        second = await backend.restart("api")
        assert second != first
        assert second.split("@")[0] == first.split("@")[0]  # same container, new incarnation
        assert backend.identity("api") == second
        handle = backend.handle("api")
        assert handle["name"] == f"tc-{run_id}-api"
        assert handle["id"].startswith(second.split("@")[0])
        await eventually(lambda: healthy(http, port), "healthy after restart")

        await backend.signal("api", signal.SIGKILL)
        assert backend.state("api") is TargetState.EXITED
        assert backend.identity("api") is None

        done = await backend.remove("api")
        assert f"tc-{run_id}-api" in one_line(TargetError(done))
        assert run_containers(run_id) == []
        assert backend.state("api") is TargetState.NOT_STARTED
    finally:
        await backend.close()
    assert run_containers(run_id) == []


async def test_a_fresh_backend_removes_the_containers_of_a_crashed_run(
    scope: RunScope, run_id: str
) -> None:
    """The guard's case: a removal is recorded before its container exists, so its record
    has no handle, and the guard's new backend removes by the run's label, as its first
    call to the engine."""
    specs = docker_specs(web=docker_run(image=HTTPD, ports={"8080": free_port()}))
    crashed = DockerBackend(specs, scope)  # closed only at the end: it "crashed"
    try:
        await crashed.start("web")
        assert run_containers(run_id) != []

        guard = DockerBackend(specs, scope)
        try:
            done = await guard.remove("web")
        finally:
            await guard.close()

        assert "removed container" in done
        assert run_containers(run_id) == []
    finally:
        await crashed.close()


async def test_a_recovery_reaches_the_engine_its_run_used_whatever_its_own_docker_host(
    scope: RunScope,
    run_id: str,
    docker_host: str,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handle names the engine: ``recover`` started in a shell without the run's
    DOCKER_HOST still resumes and removes the run's paused container."""
    port = free_port()
    specs = docker_specs(web=docker_run(image=HTTPD, ports={"8080": port}, stop_grace="1s"))
    crashed = DockerBackend(specs, scope)  # closed only at the end: it "crashed"
    try:
        await crashed.start("web")
        await crashed.pause("web")
        handle = crashed.handle("web")
        assert handle["engine"] == docker_host

        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        recovered = DockerBackend(specs, scope)
        try:
            recovered.adopt("web", handle)
            await recovered.resume("web")
            await eventually(lambda: healthy(http, port), "healthy after the resume")
            await recovered.remove("web")
        finally:
            await recovered.close()
        monkeypatch.setenv("DOCKER_HOST", docker_host)
        assert run_containers(run_id) == []
    finally:
        await crashed.close()


async def test_existing_container_paused_then_resumed_by_a_new_backend_that_adopts_it(
    scope: RunScope, run_id: str, sdk: Any, http: httpx.AsyncClient
) -> None:
    from docker.types import Ulimit

    port = free_port()
    name = f"tc-test-{run_id}-existing"
    container = sdk.containers.create(
        HTTPD,
        name=name,
        labels={TEST_LABEL: run_id},
        init=True,
        ports={"8080/tcp": ("127.0.0.1", port)},
        ulimits=[
            Ulimit(name="nofile", soft=4096, hard=4096),
            Ulimit(name="nproc", soft=1024, hard=1024),
        ],
    )
    container.start()
    specs = docker_specs(web=docker_run(container=name, stop_grace="1s"))

    crashed = DockerBackend(specs, scope)
    try:
        assert not crashed.owns("web")
        assert crashed.state("web") is TargetState.RUNNING
        await crashed.pause("web")
        assert crashed.state("web") is TargetState.PAUSED
        handle = crashed.handle("web")
        assert handle["id"] == container.id
        assert not await healthy(http, port, timeout_s=0.3)

        # The coordinator "crashed": a new backend built from the same specs takes over.
        recovered = DockerBackend(specs, scope)
        try:
            recovered.adopt("web", handle)
            assert recovered.state("web") is TargetState.PAUSED
            await recovered.resume("web")
            assert recovered.state("web") is TargetState.RUNNING
            await eventually(lambda: healthy(http, port), "healthy after the adopted resume")

            # The events thread keeps the cache current for what happens outside the backend.
            sdk.api.kill(container.id)
            await eventually(
                lambda: recovered.state("web") is TargetState.EXITED, "exited seen via events"
            )
            assert "left in place" in await recovered.remove("web")
            assert await recovered.start("web")
            assert recovered.state("web") is TargetState.RUNNING
        finally:
            await recovered.close()
    finally:
        await crashed.close()
    # Never removed by the backends: the test's own fixture removes it.
    assert sdk.api.inspect_container(name)["State"]["Running"]


async def test_missing_image_is_one_line_error_and_nothing_is_pulled(
    scope: RunScope, run_id: str, sdk: Any
) -> None:
    image = f"localhost/tc-no-such-image-{run_id}:latest"
    backend = DockerBackend(docker_specs(ghost=docker_run(image=image)), scope)
    try:
        with pytest.raises(TargetError) as info:
            await backend.start("ghost")
    finally:
        await backend.close()
    message = one_line(info.value)
    assert message.startswith("ghost: ")
    assert "not present locally" in message and "no pull" in message
    assert not info.value.infrastructure
    assert run_containers(run_id) == []
    assert sdk.images.list(name=image) == []


async def test_unreachable_engine_is_an_infrastructure_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    scope = RunScope(run_id="tunreachable", log_dir=tmp_path)
    backend = DockerBackend(docker_specs(api=docker_run(image=HTTPD)), scope)
    try:
        with pytest.raises(TargetError) as info:
            await backend.start("api")
    finally:
        await backend.close()
    message = one_line(info.value)
    assert message.startswith("cannot reach the Docker engine at unix:///nonexistent.sock: ")
    assert info.value.infrastructure
    with pytest.raises(TargetError) as listing:
        run_containers("tunreachable")
    assert listing.value.infrastructure


async def test_sync_logs_writes_stdout_and_stderr_apart(scope: RunScope, run_id: str) -> None:
    script = 'echo "out $GREETING"; echo "err $GREETING" >&2; exec sleep 60'
    specs = docker_specs(
        talker=docker_run(
            image=BUSYBOX,
            command=("sh", "-c", script),
            env={"GREETING": "hello"},
            stop_grace="1s",
        )
    )
    backend = DockerBackend(specs, scope)
    out_path, err_path = backend.log_paths("talker")
    assert (out_path, err_path) == (
        scope.log_dir / "talker.out.log",
        scope.log_dir / "talker.err.log",
    )
    try:
        await backend.start("talker")

        async def both_written() -> bool:
            await backend.sync_logs("talker")
            return out_path.read_text() != "" and err_path.read_text() != ""

        await eventually(both_written, "both logs written")
        assert out_path.read_text() == "out hello\n"
        assert err_path.read_text() == "err hello\n"
        await backend.stop("talker")  # init=True: sleep gets the SIGTERM
        assert backend.state("talker") is TargetState.EXITED
        await backend.remove("talker")
        assert out_path.read_text() == "out hello\n"
    finally:
        await backend.close()
    assert run_containers(run_id) == []


async def test_an_existing_containers_logs_are_its_lines_since_the_run_and_copied_at_close(
    tmp_path: Path, run_id: str, sdk: Any
) -> None:
    """Not the whole history of a container that outlives runs, and in the report even
    without a log check (close copies them)."""
    name = f"tc-test-{run_id}-talker"
    loop = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"
    container = sdk.containers.create(
        BUSYBOX, command=["sh", "-c", loop], name=name, labels={TEST_LABEL: run_id}, init=True
    )
    container.start()
    # The run "starts" 2.5 s after the container: its first lines are not the run's.
    scope = RunScope(run_id, tmp_path / "logs", started_at_ms=int(time.time() * 1000) + 2500)
    backend = DockerBackend(docker_specs(talker=docker_run(container=name)), scope)
    out_path, _ = backend.log_paths("talker")
    try:
        assert await backend.start("talker")  # it runs already: nothing to do

        async def logged_since_the_run() -> bool:
            await backend.sync_logs("talker")
            return out_path.read_text() != ""

        await eventually(logged_since_the_run, "lines after the run's start", deadline_s=15)
        lines = out_path.read_text().splitlines()
        assert "line 0" not in lines and lines[0].startswith("line "), lines
        out_path.unlink()
    finally:
        await backend.close()
    assert out_path.read_text().startswith("line "), "close copies the existing one's logs"
    assert sdk.api.inspect_container(name)["State"]["Running"], "left in place"


async def test_stop_with_a_chosen_signal(scope: RunScope, run_id: str, sdk: Any) -> None:
    """``stop`` with SIGINT reaches the container's process (exit 7 on INT), not SIGTERM."""
    script = "trap 'exit 7' INT; trap '' TERM; echo ready; while :; do sleep 0.1; done"
    specs = docker_specs(
        job=docker_run(image=BUSYBOX, command=["sh", "-c", script], stop_grace="5s")
    )
    backend = DockerBackend(specs, scope)
    try:
        await backend.start("job")

        async def trapped() -> bool:  # the shell has set its traps
            await backend.sync_logs("job")
            out = backend.log_paths("job")[0]
            return out.exists() and "ready" in out.read_text()

        await eventually(trapped, "the shell to set its traps")

        await backend.stop("job", signum=signal.SIGINT)

        assert backend.state("job") is TargetState.EXITED
        [name] = run_containers(run_id)
        assert 7 == sdk.containers.get(name).attrs["State"]["ExitCode"]
    finally:
        await backend.close()


async def test_an_undo_waits_for_the_stop_a_cancelled_restart_left_running(
    scope: RunScope, http: httpx.AsyncClient
) -> None:
    """A restart past its step's timeout is cancelled while the engine still stops the
    container (httpd ignores SIGTERM: the stop takes its 3 s grace). The undo's start must
    wait for that stop, then start the container, not see it running and do nothing."""
    port = free_port()
    backend = DockerBackend(
        docker_specs(
            api=docker_run(image=HTTPD, ports={"8080": port}, stop_grace="3s", init=False)
        ),
        scope,
    )
    try:
        await backend.start("api")
        await eventually(lambda: healthy(http, port), "healthy")
        restart = asyncio.ensure_future(backend.restart("api"))
        await eventually(
            lambda: backend._in_flight.get("api", ("", None))[0] == "stop", "the stop under way"
        )
        _, stopping = backend._in_flight["api"]
        restart.cancel()
        with pytest.raises(asyncio.CancelledError):
            await restart

        await backend.start("api")  # what the undo does
        await asyncio.wait([stopping], timeout=30)  # the stop has landed, whenever it did

        assert TargetState.RUNNING is (await backend._refresh("api")).state
        await eventually(lambda: healthy(http, port), "healthy after the undo")
    finally:
        await backend.close()
