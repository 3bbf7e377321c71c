"""The runs API over gRPC: ``test_coordinator.v1.TestCoordinator``
(``proto/test_coordinator/v1/test_coordinator.proto``) over the same :class:`RunManager`
and with the same rules as the REST API (:mod:`.http.runs`).

* Access: with a token, every call of this service needs the metadata
  ``authorization: Bearer <token>`` (compared in constant time), else
  ``UNAUTHENTICATED``. The check is in the servicer, so health and reflection, served
  by the same server, stay open.
* Refusals (:class:`RunRefused`) map to status codes by their HTTP-like status
  (:data:`STATUS_CODES`). An invalid scenario (422) is ``INVALID_ARGUMENT`` with its
  problems in the status message, one a line, and as a serialized ``ScenarioProblems``
  in the trailing metadata :data:`PROBLEMS_METADATA_KEY`; both are cut to stay well
  within gRPC's default 8 KiB of metadata (``ScenarioProblems.total`` tells how many
  there are; ``ValidateScenario`` returns them all in its response).
* Requests from gRPC are remote: a scenario document may not run anything on this
  host unless the manager allows remote execution (``PERMISSION_DENIED``).
* Bounds as in REST: a page of at most :data:`MAX_PAGE` runs, a document of at most
  :data:`MAX_DOCUMENT_BYTES`. Whoever builds the server should also bound what the
  transport accepts, so that a larger message is refused before it is read whole:
  ``grpc.aio.server(options=SERVER_OPTIONS)`` (``grpc.max_receive_message_length``
  :data:`MAX_RECEIVE_MESSAGE_BYTES`; gRPC's default is 4 MiB).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, NoReturn

import grpc

from test_coordinator.entrypoints.grpc_lenient import add_lenient_service
from test_coordinator.entrypoints.grpc_run_detail import detail_message
from test_coordinator.entrypoints.http.auth import token_matches
from test_coordinator.grpc_api.v1 import PROBLEMS_METADATA_KEY
from test_coordinator.grpc_api.v1 import test_coordinator_pb2 as pb
from test_coordinator.grpc_api.v1 import test_coordinator_pb2_grpc as pb_grpc
from test_coordinator.ports.storage import JournalEvent, RunCursor, RunQuery, RunStatus
from test_coordinator.scenario.problems import ScenarioProblem
from test_coordinator.service.runs.events import FollowerTooSlow
from test_coordinator.service.runs.manager import RunManager, RunView
from test_coordinator.service.runs.requests import (
    RunRefused,
    RunRequest,
    ScenarioRejected,
    UnknownScenario,
)
from test_coordinator.service.runs.run_files import journal_detail, run_file

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["TestCoordinator"].full_name
"""``test_coordinator.v1.TestCoordinator``: for reflection and health."""

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_DOCUMENT_BYTES = 1_048_576
MAX_TEXT = 500
"""A scenario name, run id or cursor: at most this many characters."""
MAX_VARS = 200
SEED_MAX = 2**31 - 1
MAX_MS = 2**62
MAX_RECEIVE_MESSAGE_BYTES = MAX_DOCUMENT_BYTES + 64 * 1024
"""What the server should accept in one message: a whole document, its vars and framing."""
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
)

PROBLEMS_METADATA_BYTES = 3072
"""At most this much serialized ScenarioProblems (4 KiB once base64-encoded on the wire)."""
DETAILS_BYTES = 2048
"""At most this much status message, as percent-encoded on the wire."""
PROBLEM_MESSAGE_CHARS = 300
FINAL_STATUS_WAIT_S = 2.0

STATUS_CODES: Mapping[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
"""RunRefused's status → the gRPC status code."""

_TO_PB = {status: pb.RunStatus.Value(f"RUN_STATUS_{status.name}") for status in RunStatus}
_FROM_PB = {number: status for status, number in _TO_PB.items()}


def add_runs_service(
    server: grpc.aio.Server,
    manager: RunManager,
    token: str | None,
    *,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
) -> str:
    """Serve the runs API on ``server`` (before it starts); its full service name, for
    reflection. ``token``: the bearer token every call needs (None: open)."""
    if token is not None and not token.strip():
        raise ValueError("the runs service's token is blank: give a token, or None")
    servicer = TestCoordinatorServicer(manager, token, max_document_bytes=max_document_bytes)
    descriptor = pb.DESCRIPTOR.services_by_name["TestCoordinator"]
    add_lenient_service(server, descriptor, pb, servicer, servicer._authorize)
    return SERVICE_NAME


class TestCoordinatorServicer(pb_grpc.TestCoordinatorServicer):
    """Each RPC of ``test_coordinator.v1.TestCoordinator`` (named as in the proto) over a
    :class:`RunManager`."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(
        self,
        manager: RunManager,
        token: str | None,
        *,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self._manager = manager
        self._token = token
        self._max_document_bytes = max_document_bytes

    async def StartRun(
        self, request: pb.StartRunRequest, context: grpc.aio.ServicerContext
    ) -> pb.Run:
        await self._authorize(context)
        scenario, document = await self._source(request, context)
        run_vars = await _vars(request.vars, context)
        seed: int | None = None
        if request.HasField("seed"):
            seed = request.seed
            if not 0 <= seed <= SEED_MAX:
                await _invalid(context, f"seed must be between 0 and {SEED_MAX}, not {seed}")
        run_request = RunRequest(
            scenario=scenario, document=document, vars=run_vars, seed=seed, remote=True
        )
        try:
            view = await self._manager.submit(run_request)
        except RunRefused as exc:
            await _refuse(context, exc)
        return run_message(view)

    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        await self._authorize(context)
        run_id = await _run_id(request.run_id, context)
        try:
            view = await self._manager.get(run_id)
        except RunRefused as exc:
            await _refuse(context, exc)
        run = run_message(view)
        journal = run_file(view.record.summary, "journal.json")
        if journal is not None:
            parts = await asyncio.to_thread(journal_detail, journal)
            if parts:
                run.detail.CopyFrom(detail_message(parts))
        return run

    async def ListRuns(
        self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRunsResponse:
        await self._authorize(context)
        query = await _run_query(request, context)
        page = await self._manager.store.query_runs(query)
        return pb.ListRunsResponse(
            runs=[run_message(self._manager.view_of(record)) for record in page.runs],
            next_cursor=page.next.encode() if page.next is not None else "",
        )

    async def CancelRun(
        self, request: pb.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> pb.Run:
        await self._authorize(context)
        run_id = await _run_id(request.run_id, context)
        try:
            view = await self._manager.cancel(run_id)
        except RunRefused as exc:
            await _refuse(context, exc)
        return run_message(view)

    async def WatchRun(
        self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunEvent]:
        await self._authorize(context)
        run_id = await _run_id(request.run_id, context)
        if not 0 <= request.after_seq <= MAX_MS:
            await _invalid(context, f"after_seq must be between 0 and {MAX_MS}")
        try:
            await self._manager.get(run_id)
        except RunRefused as exc:
            await _refuse(context, exc)
        stream = self._manager.follow(run_id, request.after_seq)
        try:
            async for event in stream:
                yield event_message(event)
        except RunRefused as exc:
            await _refuse(context, exc)
        except FollowerTooSlow as exc:
            await context.abort(
                grpc.StatusCode.ABORTED,
                f"the watch fell behind the run's events ({exc}); watch again with "
                "after_seq set to the last seq received",
            )
        finally:
            await stream.aclose()
        view = await self._final_view(run_id)
        yield end_message(view)

    async def ListScenarios(
        self, request: pb.ListScenariosRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListScenariosResponse:
        await self._authorize(context)
        found = await asyncio.to_thread(self._manager.library.scenarios)
        return pb.ListScenariosResponse(
            scenarios=[pb.Scenario(name=s.name, file=str(s.path)) for s in found]
        )

    async def ValidateScenario(
        self, request: pb.ValidateScenarioRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateScenarioResponse:
        await self._authorize(context)
        scenario, document = await self._source(request, context)
        overrides = await _vars(request.vars, context)
        try:
            problems = await asyncio.to_thread(
                self._manager.library.problems,
                name=scenario,
                document=document,
                overrides=overrides,
            )
        except UnknownScenario as exc:
            await _refuse(context, exc)
        return pb.ValidateScenarioResponse(
            valid=not problems, problems=[problem_message(p) for p in problems]
        )

    # -- helpers -----------------------------------------------------------------------

    async def _authorize(self, context: grpc.aio.ServicerContext) -> None:
        if self._token is None:
            return
        if not token_matches(self._token, bearer_token(context.invocation_metadata())):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "a valid bearer token is needed (metadata authorization: Bearer <API_TOKEN>)",
            )

    async def _source(
        self,
        request: pb.StartRunRequest | pb.ValidateScenarioRequest,
        context: grpc.aio.ServicerContext,
    ) -> tuple[str | None, str | None]:
        """(scenario, document): exactly one of them, each within its bounds."""
        which = request.WhichOneof("source")
        if which == "scenario":
            if not 1 <= len(request.scenario) <= MAX_TEXT:
                await _invalid(context, f"scenario: a name of 1 to {MAX_TEXT} characters")
            return request.scenario, None
        if which == "document":
            size = len(request.document.encode())
            if size == 0:
                await _invalid(context, "document: the scenario's text is empty")
            if size > self._max_document_bytes:
                await _invalid(
                    context,
                    f"document: {size} bytes, more than the {self._max_document_bytes} allowed",
                )
            return None, request.document
        await _invalid(context, "give exactly one of scenario (a name in the library) and document")

    async def _final_view(self, run_id: str) -> RunView:
        """The run once its follow ended: its final status is stored by then, except when a
        queued run was just dropped (the manager wakes followers before it stores that
        one), so a still-queued record that left the queue is read again, bounded."""
        view = await self._manager.get(run_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FINAL_STATUS_WAIT_S
        while (
            view.record.status is RunStatus.QUEUED
            and view.queue_position is None
            and loop.time() < deadline
        ):
            await asyncio.sleep(0.01)
            view = await self._manager.get(run_id)
        return view


# -- requests ----------------------------------------------------------------------------


async def _invalid(context: grpc.aio.ServicerContext, detail: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, detail)
    raise AssertionError("unreachable: abort raises")


async def _run_id(run_id: str, context: grpc.aio.ServicerContext) -> str:
    if not 1 <= len(run_id) <= MAX_TEXT:
        await _invalid(context, f"run_id: 1 to {MAX_TEXT} characters")
    return run_id


async def _vars(given: Mapping[str, str], context: grpc.aio.ServicerContext) -> dict[str, str]:
    if len(given) > MAX_VARS:
        await _invalid(context, f"vars: at most {MAX_VARS}, not {len(given)}")
    return dict(given)


async def _run_query(request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> RunQuery:
    scenario = request.scenario if request.HasField("scenario") else None
    if scenario is not None and len(scenario) > MAX_TEXT:
        await _invalid(context, f"scenario: at most {MAX_TEXT} characters")
    statuses = []
    for number in request.statuses:
        status = _FROM_PB.get(number)
        if status is None:
            await _invalid(context, f"statuses: {number} is not a run status")
        statuses.append(status)
    bounds: dict[str, int | None] = {}
    for name in ("started_from_ms", "started_to_ms"):
        value: int | None = getattr(request, name) if request.HasField(name) else None
        if value is not None and not 0 <= value <= MAX_MS:
            await _invalid(context, f"{name}: between 0 and {MAX_MS}, not {value}")
        bounds[name] = value
    limit = request.limit or DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        await _invalid(context, f"limit: 1 to {MAX_PAGE} (0: {DEFAULT_PAGE}), not {limit}")
    before = None
    if request.cursor:
        if len(request.cursor) > MAX_TEXT:
            await _invalid(context, f"cursor: at most {MAX_TEXT} characters")
        try:
            before = RunCursor.decode(request.cursor)
        except ValueError as exc:
            await _invalid(context, f"cursor: {exc}")
    return RunQuery(
        scenario=scenario,
        statuses=frozenset(statuses),
        started_from_ms=bounds["started_from_ms"],
        started_to_ms=bounds["started_to_ms"],
        limit=limit,
        before=before,
    )


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the first ``authorization: Bearer <token>`` in ``metadata``, if any."""
    for key, value in metadata or ():
        if key.lower() != "authorization" or not isinstance(value, str):
            continue
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()
    return None


# -- refusals ----------------------------------------------------------------------------


async def _refuse(context: grpc.aio.ServicerContext, exc: RunRefused) -> NoReturn:
    code = STATUS_CODES.get(exc.status, grpc.StatusCode.UNKNOWN)
    if isinstance(exc, ScenarioRejected):
        details, problems = rejection(exc)
        await context.abort(code, details, trailing_metadata=((PROBLEMS_METADATA_KEY, problems),))
    await context.abort(code, exc.reason)
    raise AssertionError("unreachable: abort raises")


def rejection(exc: ScenarioRejected) -> tuple[str, bytes]:
    """The status message (the reason, then a problem a line) and the serialized
    ScenarioProblems of an invalid scenario, each cut to its budget."""
    kept: list[pb.Problem] = []
    size = 0
    for problem in exc.problems:
        message = problem_message(problem, max_chars=PROBLEM_MESSAGE_CHARS)
        # a repeated field costs its tag, its length and the message
        cost = message.ByteSize() + 4
        if size + cost > PROBLEMS_METADATA_BYTES:
            break
        kept.append(message)
        size += cost
    problems = pb.ScenarioProblems(problems=kept, total=len(exc.problems)).SerializeToString()
    lines = [exc.reason]
    size = _wire_size(exc.reason)
    for index, problem in enumerate(exc.problems):
        line = _cut(str(problem), PROBLEM_MESSAGE_CHARS)
        left = len(exc.problems) - index - 1
        tail = f"... and {left + 1} more (ValidateScenario lists them all)"
        # each line must leave room for the tail, but the last one needs none
        room = 0 if left == 0 else 1 + _wire_size(tail)
        if size + 1 + _wire_size(line) + room > DETAILS_BYTES:
            lines.append(tail)
            break
        lines.append(line)
        size += 1 + _wire_size(line)
    return "\n".join(lines), problems


def _wire_size(text: str) -> int:
    """Bytes of ``text`` as a grpc-message header: printable ASCII but ``%`` stay, the
    rest is percent-encoded byte by byte."""
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in text.encode())


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


# -- messages ----------------------------------------------------------------------------


def run_message(view: RunView) -> pb.Run:
    """A run as the API shows it (the REST API's RunOut)."""
    record = view.record
    summary: Mapping[str, Any] = record.summary
    run = pb.Run(
        run_id=record.run_id,
        scenario=record.scenario,
        status=_TO_PB[record.status],
        started_at_ms=record.started_at_ms,
        waiting_for=view.waiting_for,
        cancel_requested=view.cancel_requested,
    )
    if record.ended_at_ms is not None:
        run.ended_at_ms = record.ended_at_ms
    for name in ("submitted_at_ms", "seed"):
        number = summary.get(name)
        if isinstance(number, int) and not isinstance(number, bool):
            setattr(run, name, number)
    for name in ("outcome", "reason", "source"):
        text = summary.get(name)
        if isinstance(text, str):
            setattr(run, name, text)
    if view.queue_position is not None:
        run.queue_position = view.queue_position
    given = summary.get("vars")
    if isinstance(given, Mapping):
        for key, value in given.items():
            run.vars[str(key)] = _var_text(value)
    return run


def _var_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def event_message(event: JournalEvent) -> pb.RunEvent:
    """A journal event (as the REST API's journal and SSE events show it)."""
    data = dict(event.data)
    at_ms = data.pop("at_ms", event.at_ms)
    return pb.RunEvent(
        seq=event.seq,
        at_ms=float(at_ms) if isinstance(at_ms, int | float) else float(event.at_ms),
        kind=event.kind,
        data_json=json.dumps(data, separators=(",", ":"), default=str),
    )


def end_message(view: RunView) -> pb.RunEvent:
    """The last event of a watch: the run's final status, and the run."""
    record = view.record
    data = {"run_id": record.run_id, "status": record.status.value}
    return pb.RunEvent(
        seq=0,
        at_ms=0.0,
        kind="end",
        data_json=json.dumps(data, separators=(",", ":")),
        run=run_message(view),
    )


def problem_message(problem: ScenarioProblem, *, max_chars: int | None = None) -> pb.Problem:
    message = problem.message if max_chars is None else _cut(problem.message, max_chars)
    return pb.Problem(
        file=problem.file,
        line=problem.position.line,
        column=problem.position.column,
        path=problem.path if max_chars is None else _cut(problem.path, max_chars),
        message=message,
    )


__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_PAGE",
    "MAX_RECEIVE_MESSAGE_BYTES",
    "PROBLEMS_METADATA_KEY",
    "SERVER_OPTIONS",
    "SERVICE_NAME",
    "TestCoordinatorServicer",
    "add_runs_service",
]
