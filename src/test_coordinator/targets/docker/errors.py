"""Docker SDK exceptions as :class:`TargetError`: one readable line, naming the service."""

from __future__ import annotations

import os
import traceback
import warnings

from test_coordinator.targets.port import TargetError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_MAX_LEN = 400


def engine_url() -> str:
    """Where the SDK looks for the engine (``docker.from_env``): DOCKER_HOST or the default."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_LEN else line[: _MAX_LEN - 3] + "..."


def translate(
    exc: BaseException, service: str, doing: str, engine: str | None = None
) -> TargetError:
    """``exc`` (raised by the SDK while ``doing`` something to ``service``, through the
    engine at ``engine``, by default the environment's) as a TargetError."""
    if isinstance(exc, TargetError):
        return exc
    reason = _unreachable_reason(exc)
    if reason is not None:
        _drop_frames(exc)
        return TargetError(
            f"cannot reach the Docker engine at {engine or engine_url()}: {reason} "
            f"({service}: {doing})",
            infrastructure=True,
        )
    from docker.errors import APIError

    if isinstance(exc, APIError):
        detail = str(exc.explanation or exc)
        return TargetError(
            one_line(f"{service}: {doing}: {detail}"), infrastructure=exc.is_server_error()
        )
    return TargetError(
        one_line(f"{service}: {doing}: {type(exc).__name__}: {exc}"), infrastructure=True
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and exceptions held in their args (urllib3 nests them)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return seen


def _unreachable_reason(exc: BaseException) -> str | None:
    """Why the engine did not answer, if that is what ``exc`` says; else None."""
    import requests
    from docker.errors import APIError

    if isinstance(exc, APIError):
        return None
    chain = _chain(exc)
    if not any(isinstance(e, requests.ConnectionError | requests.Timeout) for e in chain):
        return None
    for cause in reversed(chain):
        if isinstance(cause, OSError) and not isinstance(cause, requests.RequestException):
            return one_line(cause.strerror or str(cause) or type(cause).__name__)
    if any(isinstance(e, requests.Timeout) for e in chain):
        return "no answer in time"
    return one_line(str(chain[-1]) or type(chain[-1]).__name__)


def _drop_frames(exc: BaseException) -> None:
    """Free what the failed connection's frames hold: the SDK leaves the socket of a failed
    ``connect`` unclosed, and its ResourceWarning would surface wherever it is collected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for each in _chain(exc):
            if each.__traceback__ is not None:
                traceback.clear_frames(each.__traceback__)
