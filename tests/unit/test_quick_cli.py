"""A plain run or validate starts without Typer (entrypoints.quick_cli): it reads the
arguments as Typer would, leaves Typer everything else, and answers exactly as Typer does."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from test_coordinator.entrypoints.cli import app
from test_coordinator.entrypoints.quick_cli import parse, quick_main

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "examples"
EXAMPLE = str(EXAMPLES / "restart-recovery.yaml")


@pytest.fixture(autouse=True)
def _collector_as_it_was() -> Iterator[None]:
    """quick_main freezes what its imports made (gc.freeze); the tests' process goes on."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    assert gc.isenabled() == enabled


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["validate", "a.yaml"], ("validate", ["a.yaml"], {}, None, "reports")),
        (
            ["validate", "a.yaml", "--var", "x=1", "b", "--var=y= 2=3", "--var", " z =", "c.yml"],
            (
                "validate",
                ["a.yaml", "b", "c.yml"],
                {"x": "1", "y": " 2=3", "z": ""},
                None,
                "reports",
            ),
        ),
        (["run", "a.yaml"], ("run", ["a.yaml"], {}, None, "reports")),
        (
            ["run", "--seed", "7", "--reports-dir", "out", "a.yaml", "--seed=0042"],
            ("run", ["a.yaml"], {}, 42, "out"),
        ),
        (["run", "--seed", "x", "--seed", "3", "a"], ("run", ["a"], {}, 3, "reports")),
        (["run", "--reports-dir=a=b", "a"], ("run", ["a"], {}, None, "a=b")),
    ],
)
def test_plain_arguments_are_read_as_typer_reads_them(
    argv: list[str], expected: tuple[str, list[str], dict[str, str], int | None, str]
) -> None:
    args = parse(argv)

    assert args is not None
    command, paths, overrides, seed, reports_dir = expected
    assert (args.command, args.overrides, args.seed) == (command, overrides, seed)
    assert args.paths == [Path(p) for p in paths]
    assert args.reports_dir == Path(reports_dir)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["--version"],
        ["plan", "a.yaml"],
        ["schema"],
        ["validate"],
        ["validate", "--help"],
        ["validate", "a.yaml", "--help"],
        ["validate", "a.yaml", "--seed", "1"],  # not an option of validate
        ["validate", "--var", "oops", "a.yaml"],  # no '='
        ["validate", "--var", "=1", "a.yaml"],  # no name
        ["validate", "--var"],
        ["validate", "--var", "x=1"],  # no paths
        ["validate", "--", "a.yaml"],
        ["validate", "-"],
        ["validate", ""],
        ["run", "a.yaml", "--seed", "-1"],
        ["run", "a.yaml", "--seed", "1.5"],
        ["run", "a.yaml", "--seed", "x"],
        ["run", "a.yaml", "--seed", "\uff11"],  # a digit, but not one Typer reads the same way
        ["run", "a.yaml", "--seed", "1" * 19],
        ["run", "a.yaml", "--seed="],
        ["run", "a.yaml", "--reports-dir", "-x"],
        ["run", "a.yaml", "-s", "1"],
        ["run", "a.yaml", "--reports"],
    ],
)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse(argv) is None
    assert quick_main(argv) is None


def test_a_shell_completion_request_is_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_TEST_COORDINATOR_COMPLETE", "bash_complete")

    assert parse(["validate", "a.yaml"]) is None


def _bad_scenario(tmp_path: Path) -> str:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nservices: {}\nsteps:\n  - wiat: 1s\n")
    return str(bad)


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", EXAMPLE],
        ["validate", "{bad}", EXAMPLE],
        ["validate", str(EXAMPLES), "--var", "max_recovery=1"],
        ["validate", "--var=max_recovery_ms=5", EXAMPLE],
        ["validate", "{tmp}/missing.yaml"],
        ["validate", "{tmp}"],
        ["run", "{bad}", "--seed", "3", "--reports-dir", "{tmp}/reports"],
        ["run", EXAMPLE, "--var", "nope=1", "--reports-dir", "{tmp}/reports"],
        ["run", "{tmp}"],
    ],
)
def test_it_answers_exactly_as_typer_does(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _bad_scenario(tmp_path)
    (tmp_path / "empty").mkdir()
    argv = [arg.format(bad=bad, tmp=tmp_path / "empty") for arg in argv]

    code = quick_main(argv)
    quick = capsys.readouterr()
    typer_result = CliRunner().invoke(app, argv)

    assert code is not None
    assert (code, quick.out, quick.err) == (
        typer_result.exit_code,
        typer_result.stdout,
        typer_result.stderr,
    )


def test_a_plain_validate_never_imports_typer() -> None:
    code = (
        "import json, sys\n"
        f"sys.argv = ['test-coordinator', 'validate', {EXAMPLE!r}]\n"
        "from test_coordinator.entrypoints.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])

    assert "restart-recovery.yaml: ok" in done.stdout
    assert sorted({"typer", "click", "rich", "pydantic_settings"} & set(loaded)) == []


def test_the_command_runs_with_the_collector_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector is paused for the imports only: a long run collects as usual."""
    from test_coordinator.entrypoints import scenario_text

    seen: list[bool] = []

    def validate_files(paths: list[Path], overrides: dict[str, str]) -> int:
        seen.append(gc.isenabled())
        return 0

    monkeypatch.setattr(scenario_text, "validate_files", validate_files)

    assert 0 == quick_main(["validate", EXAMPLE])
    assert seen == [True]


def test_an_interrupt_while_the_modules_load_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C in the first tenths of a second lands in an import, before any command
    handles it: the entry point itself answers it, as the commands do."""
    from test_coordinator.entrypoints import cli, quick_cli

    def interrupted(argv: list[str]) -> int | None:
        raise KeyboardInterrupt

    monkeypatch.setattr(quick_cli, "quick_main", interrupted)
    monkeypatch.setattr(sys, "argv", ["test-coordinator", "validate", EXAMPLE])

    with pytest.raises(SystemExit) as exited:
        cli.main()

    assert 130 == exited.value.code


def test_an_error_that_is_not_about_the_output_still_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an output that is gone or full is turned into one line: any other OSError is a
    bug to see."""
    import errno

    from test_coordinator.entrypoints import cli, quick_cli

    def failing(argv: list[str]) -> int | None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(quick_cli, "quick_main", failing)

    with pytest.raises(PermissionError):
        cli.main()
