"""An asyncio client of the coordinator's gRPC runs API (``test_coordinator.v1``).

::

    async with CoordinatorClient("127.0.0.1:50051", token=API_TOKEN) as client:
        run = await client.start_run("examples/restart-recovery")
        async for event in client.watch_run(run.run_id):
            print(event.seq, event.kind, event.data)
        print((await client.get_run(run.run_id)).status)

Results are typed (:class:`Run`, :class:`RunEvent`, :class:`RunPage`, ...); every gRPC
error becomes a :class:`CoordinatorError` (a subclass per status code the API uses;
:class:`RunRejected`, with each problem, for an invalid scenario). Make the client in
a running event loop: a grpc.aio channel belongs to the loop it was made in.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import grpc

from test_coordinator.grpc_api.v1 import PROBLEMS_METADATA_KEY
from test_coordinator.grpc_api.v1 import test_coordinator_pb2 as pb
from test_coordinator.grpc_api.v1 import test_coordinator_pb2_grpc as pb_grpc
from test_coordinator.ports.storage import RunStatus

DEFAULT_TIMEOUT_S = 30.0
"""Deadline of each call but ``watch_run`` (which has none unless given)."""

VarValue = str | int | float | bool

_TO_PB = {status: pb.RunStatus.Value(f"RUN_STATUS_{status.name}") for status in RunStatus}
_FROM_PB = {number: status for status, number in _TO_PB.items()}
_FINISHED = frozenset(
    {RunStatus.PASSED, RunStatus.FAILED, RunStatus.ERROR, RunStatus.ABORTED, RunStatus.CANCELLED}
)


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepResult:
    """A step of an ended run (setup, steady state, steps); times in ms from its start."""

    step_id: str
    name: str
    kind: str
    status: str
    started_at_ms: float
    ended_at_ms: float
    detail: str
    targets: tuple[str, ...] = ()
    value: Any = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    index: int
    name: str
    kind: str
    status: str
    detail: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Recovery:
    """How long a faulted service took to answer healthy again, from the injection and
    from the undo that restored it (ms; None: it did not recover, or nothing restored it)."""

    service: str
    fault: str
    step_id: str
    step_name: str
    recovery_ms: float | None
    recovery_from_restore_ms: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class UndoResult:
    undo_id: str
    service: str
    action: str
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class RunDetail:
    """What an ended run did, from its journal."""

    setup: StepResult | None
    steady_state: tuple[StepResult, ...]
    steps: tuple[StepResult, ...]
    checks: tuple[CheckResult, ...]
    recoveries: tuple[Recovery, ...]
    undos: tuple[UndoResult, ...]


@dataclass(frozen=True, slots=True)
class Run:
    """A run as the service shows it; times are ms since the Unix epoch."""

    run_id: str
    scenario: str
    status: RunStatus
    started_at_ms: int
    submitted_at_ms: int | None = None
    ended_at_ms: int | None = None
    outcome: str | None = None
    reason: str | None = None
    seed: int | None = None
    source: str | None = None
    vars: Mapping[str, str] = field(default_factory=dict)
    queue_position: int | None = None
    waiting_for: str = ""
    cancel_requested: bool = False
    detail: RunDetail | None = None
    """What it did, once it ended (get_run only)."""

    @property
    def finished(self) -> bool:
        """Whether it has ended (passed, failed, error, aborted or cancelled)."""
        return self.status in _FINISHED


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a watched run: a journal event, or the last one, ``end``, with the run
    as it ended (``run``) and its status in ``data``."""

    seq: int
    at_ms: float
    """ms since the run's start."""
    kind: str
    data: Mapping[str, Any]
    run: Run | None = None

    @property
    def is_end(self) -> bool:
        return self.kind == "end"

    @property
    def final_status(self) -> RunStatus | None:
        """On the ``end`` event: the run's final status."""
        return self.run.status if self.run is not None else None


@dataclass(frozen=True, slots=True)
class RunPage:
    """Runs, newest first; ``next_cursor`` (None on the last page) gets the next one."""

    runs: tuple[Run, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """A scenario problem: its file, 1-based line and column, key path and what is wrong."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Validation:
    valid: bool
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario of the service's library: its name (for ``start_run``) and file."""

    name: str
    file: str


# -- errors ------------------------------------------------------------------------------


class CoordinatorError(Exception):
    """The service (or the channel) refused or failed a call: its status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class Unauthenticated(CoordinatorError):
    """No bearer token, or not the service's."""


class PermissionDenied(CoordinatorError):
    """A document would run something on the service's host, which it does not allow."""


class NotFound(CoordinatorError):
    """No such run, or no such scenario in the library."""


class InvalidArgument(CoordinatorError):
    """The request is not valid (a bound, a missing field, a bad cursor)."""


class RunRejected(InvalidArgument):
    """The scenario is not valid: its problems (``total`` of them: the service sends at most
    a few kilobytes; ``validate_scenario`` gives them all)."""

    def __init__(
        self, code: grpc.StatusCode, message: str, problems: tuple[Problem, ...], total: int
    ) -> None:
        super().__init__(code, message)
        self.problems = problems
        self.total = max(total, len(problems))


class ResourceExhausted(CoordinatorError):
    """The queue of runs is full (try again later), or a message was too large."""


class FailedPrecondition(CoordinatorError):
    """The run has already ended (a cancel)."""


class Unavailable(CoordinatorError):
    """The service is stopping, or cannot be reached."""


_ERRORS: Mapping[grpc.StatusCode, type[CoordinatorError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def error_of(exc: grpc.aio.AioRpcError) -> CoordinatorError:
    """The CoordinatorError for a failed call."""
    code: grpc.StatusCode = exc.code()
    message: str = exc.details() or ""
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        for key, value in exc.trailing_metadata() or ():
            if key == PROBLEMS_METADATA_KEY and isinstance(value, bytes):
                sent = pb.ScenarioProblems.FromString(value)
                problems = tuple(_problem(p) for p in sent.problems)
                return RunRejected(code, message, problems, sent.total)
    return _ERRORS.get(code, CoordinatorError)(code, message)


# -- the client --------------------------------------------------------------------------


class CoordinatorClient:
    """The runs API of one coordinator at ``target`` (``host:port``).

    ``token``: the service's API_TOKEN, sent as ``authorization: Bearer <token>``.
    ``credentials``: TLS channel credentials (default: a plain channel).
    ``timeout_s``: each call's deadline but ``watch_run``'s."""

    def __init__(
        self,
        target: str,
        token: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        options: Iterable[tuple[str, Any]] = (),
    ) -> None:
        channel_options = list(options)
        self._channel = (
            grpc.aio.secure_channel(target, credentials, channel_options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, channel_options)
        )
        self._stub = pb_grpc.TestCoordinatorStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None else ()
        )
        self._timeout_s = timeout_s

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    # -- runs ----------------------------------------------------------------------------

    async def start_run(
        self,
        scenario: str | None = None,
        *,
        document: str | None = None,
        vars: Mapping[str, VarValue] | None = None,
        seed: int | None = None,
        timeout_s: float | None = None,
    ) -> Run:
        """Queue a run of a library scenario (by name) or of a scenario document (its YAML).

        RunRejected (with its problems) when it is not valid, PermissionDenied when a
        document would run something on the service's host, NotFound for an unknown
        name, ResourceExhausted when the queue is full."""
        request = pb.StartRunRequest(vars=_var_texts(vars))
        _set_source(request, scenario, document)
        if seed is not None:
            request.seed = seed
        reply: pb.Run = await self._unary(self._stub.StartRun, request, timeout_s)
        return _run(reply)

    async def get_run(self, run_id: str, *, timeout_s: float | None = None) -> Run:
        reply: pb.Run = await self._unary(
            self._stub.GetRun, pb.GetRunRequest(run_id=run_id), timeout_s
        )
        return _run(reply)

    async def list_runs(
        self,
        *,
        scenario: str | None = None,
        statuses: Iterable[RunStatus | str] = (),
        started_from_ms: int | None = None,
        started_to_ms: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout_s: float | None = None,
    ) -> RunPage:
        """A page of runs, newest first, every filter given holding (``started_from_ms <=
        started_at_ms < started_to_ms``); ``cursor``: the previous page's ``next_cursor``."""
        request = pb.ListRunsRequest(
            statuses=[_TO_PB[RunStatus(s)] for s in statuses],
            limit=limit or 0,
            cursor=cursor or "",
        )
        if scenario is not None:
            request.scenario = scenario
        if started_from_ms is not None:
            request.started_from_ms = started_from_ms
        if started_to_ms is not None:
            request.started_to_ms = started_to_ms
        reply: pb.ListRunsResponse = await self._unary(self._stub.ListRuns, request, timeout_s)
        return RunPage(tuple(_run(r) for r in reply.runs), reply.next_cursor or None)

    async def cancel_run(self, run_id: str, *, timeout_s: float | None = None) -> Run:
        """Drop a queued run, or interrupt a running one (its undo runs: watch it to see it
        end ``cancelled``); FailedPrecondition once it has ended."""
        reply: pb.Run = await self._unary(
            self._stub.CancelRun, pb.CancelRunRequest(run_id=run_id), timeout_s
        )
        return _run(reply)

    async def watch_run(
        self, run_id: str, after_seq: int = 0, *, timeout_s: float | None = None
    ) -> AsyncIterator[RunEvent]:
        """The run's journal events after ``after_seq``, live until it ends, then the
        ``end`` event with the final run. To leave the loop early and cancel the call at
        once, iterate inside ``contextlib.aclosing(client.watch_run(...))``."""
        call = self._stub.WatchRun(
            pb.WatchRunRequest(run_id=run_id, after_seq=after_seq),
            metadata=self._metadata,
            timeout=timeout_s,
        )
        try:
            async for message in call:
                yield _event(message)
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc
        finally:
            call.cancel()

    # -- scenarios -----------------------------------------------------------------------

    async def list_scenarios(self, *, timeout_s: float | None = None) -> tuple[Scenario, ...]:
        reply: pb.ListScenariosResponse = await self._unary(
            self._stub.ListScenarios, pb.ListScenariosRequest(), timeout_s
        )
        return tuple(Scenario(s.name, s.file) for s in reply.scenarios)

    async def validate_scenario(
        self,
        scenario: str | None = None,
        *,
        document: str | None = None,
        vars: Mapping[str, VarValue] | None = None,
        timeout_s: float | None = None,
    ) -> Validation:
        """Every problem of a library scenario or of a document, with these variables."""
        request = pb.ValidateScenarioRequest(vars=_var_texts(vars))
        _set_source(request, scenario, document)
        reply: pb.ValidateScenarioResponse = await self._unary(
            self._stub.ValidateScenario, request, timeout_s
        )
        return Validation(reply.valid, tuple(_problem(p) for p in reply.problems))

    # -- helpers -------------------------------------------------------------------------

    async def _unary(self, method: Any, request: Any, timeout_s: float | None) -> Any:
        try:
            return await method(
                request,
                metadata=self._metadata,
                timeout=timeout_s if timeout_s is not None else self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_of(exc) from exc


def _set_source(
    request: pb.StartRunRequest | pb.ValidateScenarioRequest,
    scenario: str | None,
    document: str | None,
) -> None:
    if scenario is not None and document is None:
        request.scenario = scenario
    elif document is not None and scenario is None:
        request.document = document
    else:
        raise ValueError("give exactly one of scenario (a name in the library) and document")


def _var_texts(given: Mapping[str, VarValue] | None) -> dict[str, str]:
    """Variables as the CLI's --var gives them: text, converted by the scenario's types."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in (given or {}).items()
    }


def _status(number: int) -> RunStatus:
    status = _FROM_PB.get(number)
    if status is None:
        raise CoordinatorError(
            grpc.StatusCode.UNKNOWN, f"the service sent a run status this client does not know: "
            f"{number}"
        )  # fmt: skip
    return status


def _run(message: pb.Run) -> Run:
    def optional(name: str) -> Any:
        return getattr(message, name) if message.HasField(name) else None

    return Run(
        run_id=message.run_id,
        scenario=message.scenario,
        status=_status(message.status),
        started_at_ms=message.started_at_ms,
        submitted_at_ms=optional("submitted_at_ms"),
        ended_at_ms=optional("ended_at_ms"),
        outcome=optional("outcome"),
        reason=optional("reason"),
        seed=optional("seed"),
        source=optional("source"),
        vars=dict(message.vars),
        queue_position=optional("queue_position"),
        waiting_for=message.waiting_for,
        cancel_requested=message.cancel_requested,
        detail=_detail(message.detail) if message.HasField("detail") else None,
    )


def _value(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:  # cut to its limit by the service
        return text


def _step(message: pb.StepResult) -> StepResult:
    return StepResult(
        step_id=message.step_id,
        name=message.name,
        kind=message.kind,
        status=message.status,
        started_at_ms=message.started_at_ms,
        ended_at_ms=message.ended_at_ms,
        detail=message.detail,
        targets=tuple(message.targets),
        value=_value(message.value_json),
    )


def _detail(message: pb.RunDetail) -> RunDetail:
    def ms(recovery: pb.Recovery, name: str) -> float | None:
        return float(getattr(recovery, name)) if recovery.HasField(name) else None

    return RunDetail(
        setup=_step(message.setup) if message.HasField("setup") else None,
        steady_state=tuple(_step(s) for s in message.steady_state),
        steps=tuple(_step(s) for s in message.steps),
        checks=tuple(
            CheckResult(c.index, c.name, c.kind, c.status, c.detail, _value(c.value_json))
            for c in message.checks
        ),
        recoveries=tuple(
            Recovery(
                service=r.service,
                fault=r.fault,
                step_id=r.step_id,
                step_name=r.step_name,
                recovery_ms=ms(r, "recovery_ms"),
                recovery_from_restore_ms=ms(r, "recovery_from_restore_ms"),
                detail=r.detail,
            )
            for r in message.recoveries
        ),
        undos=tuple(
            UndoResult(u.undo_id, u.service, u.action, u.status, u.detail) for u in message.undos
        ),
    )


def _event(message: pb.RunEvent) -> RunEvent:
    data = json.loads(message.data_json) if message.data_json else {}
    return RunEvent(
        seq=message.seq,
        at_ms=message.at_ms,
        kind=message.kind,
        data=data if isinstance(data, dict) else {"value": data},
        run=_run(message.run) if message.HasField("run") else None,
    )


def _problem(message: pb.Problem) -> Problem:
    return Problem(message.file, message.line, message.column, message.path, message.message)
