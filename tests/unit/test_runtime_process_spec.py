"""Process specs are checked when made; a backend knows nothing it did not start."""

from pathlib import Path

import pytest

from test_coordinator.targets.process.supervisor import (
    BackendError,
    ProcessSpec,
    ProcessState,
    ProcessSupervisor,
)


def test_a_spec_keeps_its_command_as_a_tuple() -> None:
    spec = ProcessSpec("orders", ["python", "-m", "http.server"])  # type: ignore[arg-type]

    assert spec.command == ("python", "-m", "http.server")
    assert spec.env == {}
    assert spec.stop_grace_s == 5.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "../etc", "command": ("true",)}, "process name '../etc' is not allowed"),
        ({"name": "", "command": ("true",)}, "process name '' is not allowed"),
        ({"name": "a", "command": ()}, "a: the command is empty"),
        ({"name": "a", "command": "sleep 1"}, "a sequence of arguments, not a string"),
        ({"name": "a", "command": ("true",), "env": {"N": 1}}, r"must be strings: \['N'\]"),
        ({"name": "a", "command": ("true",), "stop_grace_s": -1}, "stop_grace_s must be >= 0"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProcessSpec(**kwargs)  # type: ignore[arg-type]


async def test_an_unknown_service_is_not_started(tmp_path: Path) -> None:
    """Queries answer for names never started; stop is a no-op; signals are errors."""
    backend = ProcessSupervisor(tmp_path)

    await backend.stop("ghost")

    assert backend.state("ghost") == ProcessState.NOT_STARTED
    assert backend.state("ghost") == "not-started"
    assert (backend.pid("ghost"), backend.exit_code("ghost"), backend.spec("ghost")) == (None,) * 3
    assert backend.log_paths("ghost") == [tmp_path / "ghost.out.log", tmp_path / "ghost.err.log"]
    assert backend.stderr_tail("ghost") == ""
    for action in (backend.pause, backend.resume, backend.kill):
        with pytest.raises(BackendError, match=r"ghost: cannot .*: it was never started"):
            await action("ghost")
    await backend.close()
