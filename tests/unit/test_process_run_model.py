"""``process:`` user, dirs and setup: the model, and the supervisor's prepare()."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from test_coordinator.scenario.inventory import ProcessRun
from test_coordinator.targets.process.backend import process_spec
from test_coordinator.targets.process.supervisor import (
    BackendError,
    ProcessSpec,
    ProcessSupervisor,
)


def test_the_new_keys_have_defaults() -> None:
    run = ProcessRun.model_validate({"command": "true"})

    assert (run.user, run.dirs, run.setup, run.setup_timeout) == (None, (), (), 60.0)


def test_setup_and_user_reach_the_spec() -> None:
    config = {
        "command": "postgres",
        "user": "postgres",
        "dirs": ["/srv/pg"],
        "setup": [["initdb", "-D", "/srv/pg"]],
        "setup_timeout": "2s",
    }
    spec = process_spec("db", ProcessRun.model_validate(config).model_dump(mode="json"), "r1")

    assert spec.user == "postgres"
    assert spec.dirs == (Path("/srv/pg"),)
    assert spec.setup == (("initdb", "-D", "/srv/pg"),)
    assert spec.setup_timeout_s == 2.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"setup": [[]]}, "setup command"),
        ({"setup": "initdb"}, "setup"),
        ({"setup_timeout": "0s"}, "setup_timeout must be more than 0"),
        ({"user": ""}, "is not a user name"),
        ({"user": "a:b"}, "is not a user name"),
    ],
)
def test_bad_values_are_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProcessRun.model_validate({"command": "true", **config})


async def test_setup_runs_in_order_with_the_env_and_cwd(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path / "logs")
    data = tmp_path / "data" / "deep"
    spec = ProcessSpec(
        "svc",
        ("true",),
        env={"WORD": "hello"},
        cwd=tmp_path,
        dirs=(data,),
        setup=(
            ("sh", "-c", 'echo "$WORD" > first'),
            ("sh", "-c", f"cat first > {data}/second; echo made"),
        ),
    )

    await supervisor.prepare(spec)

    assert (data / "second").read_text() == "hello\n"
    assert "made" in supervisor.log_paths("svc")[0].read_text()
    await supervisor.close()


async def test_a_failing_setup_command_stops_setup_in_one_line(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec(
        "svc",
        ("true",),
        cwd=tmp_path,
        setup=(
            ("sh", "-c", "echo broken >&2; echo twice >&2; exit 3"),
            ("touch", str(tmp_path / "never")),
        ),
    )

    with pytest.raises(BackendError) as caught:
        await supervisor.prepare(spec)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("svc: setup command 1 of 2 (sh -c echo broken")
    assert "exited with status 3; stderr: broken | twice" in message
    assert not (tmp_path / "never").exists()


async def test_a_setup_command_that_hangs_is_killed(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec("svc", ("true",), setup=(("sleep", "30"),), setup_timeout_s=0.2)

    with pytest.raises(BackendError, match=r"still running after 0.2 s \(killed\)"):
        await supervisor.prepare(spec)


async def test_a_missing_setup_program_is_named(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec("svc", ("true",), setup=(("/nonexistent/initdb",),))

    with pytest.raises(BackendError, match=r"setup command 1 of 1 \(/nonexistent/initdb\)"):
        await supervisor.prepare(spec)


async def test_an_unknown_user_is_one_line_naming_it(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec("svc", ("true",), user="no-such-user-tc")

    with pytest.raises(BackendError, match=r"^svc: user 'no-such-user-tc' does not exist$"):
        await supervisor.start(spec)
    with pytest.raises(BackendError, match="does not exist"):
        await supervisor.prepare(spec)


async def test_the_own_user_needs_no_switch(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec("svc", ("sleep", "30"), user=me, stop_grace_s=1.0)

    await supervisor.start(spec)
    await supervisor.close()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user can traverse (pytest's tmp_path is private to its owner)."""
    base = Path(tempfile.mkdtemp())
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_as_root_setup_and_service_run_as_the_user(tmp_path: Path, open_dir: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    own = open_dir / "own"
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec(
        "svc",
        ("sleep", "30"),
        user="nobody",
        dirs=(own,),
        setup=(("sh", "-c", f"id -u > {own}/uid"),),
        stop_grace_s=1.0,
    )
    await supervisor.prepare(spec)
    assert (own / "uid").read_text().strip() == str(nobody.pw_uid)
    assert own.stat().st_uid == nobody.pw_uid
    assert own.stat().st_mode & 0o777 == 0o700
    pid = await supervisor.start(spec)
    assert os.stat(f"/proc/{pid}").st_uid == nobody.pw_uid
    assert [stat.pid for stat in supervisor.holders("svc")] == [pid]
    await supervisor.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_as_root_an_unreachable_dir_is_explained(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec("svc", ("true",), user="nobody", dirs=(closed / "data",))

    with pytest.raises(BackendError, match=r"user nobody cannot reach .*is not searchable"):
        await supervisor.prepare(spec)


def test_dirs_must_be_absolute(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path / "logs")
    spec = ProcessSpec("svc", ("true",), dirs=(Path("relative"),))
    with pytest.raises(BackendError, match="not an absolute path"):
        asyncio.run(supervisor.prepare(spec))
