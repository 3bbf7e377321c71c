"""The runs API over REST: submit, list, get, cancel and follow runs; list and validate the
scenario library. Every route needs the bearer token when one is configured (see
:mod:`.auth`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from test_coordinator.entrypoints.http.auth import require_token
from test_coordinator.entrypoints.http.run_models import (
    ErrorBody,
    Journal,
    JournalEventOut,
    Problem,
    Problems,
    RunDetail,
    RunOut,
    RunPage,
    RunSubmission,
    ScenarioList,
    ScenarioOut,
    ValidationOut,
    ValidationRequest,
)
from test_coordinator.ports.availability import StorageUnavailable
from test_coordinator.ports.storage import JournalEvent, RunCursor, RunQuery, RunStatus
from test_coordinator.scenario.problems import ScenarioProblem
from test_coordinator.service.runs.manager import RunManager
from test_coordinator.service.runs.requests import (
    QueueFull,
    RunRefused,
    RunRequest,
    UnknownScenario,
)
from test_coordinator.service.runs.run_files import journal_detail, run_file

KEEP_ALIVE_S = 15.0
MAX_PAGE = 500
REPORT_FILES = {"report.html": "text/html", "junit.xml": "application/xml"}

_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or not the right one"},
    413: {"model": ErrorBody, "description": "The request body is larger than allowed"},
    422: {"model": Problems, "description": "A parameter is not valid"},
    503: {"model": ErrorBody, "description": "The run store does not answer"},
}
RUN_LINKS = {
    name: {"operationId": operation, "parameters": {"run_id": "$response.body#/run_id"}}
    for name, operation in (
        ("GetRun", "getRun"),
        ("CancelRun", "cancelRun"),
        ("GetRunJournal", "getRunJournal"),
        ("FollowRunEvents", "followRunEvents"),
        ("GetRunReport", "getRunReport"),
        ("GetRunJunit", "getRunJunit"),
    )
}
"""Where a submitted run's id leads (OpenAPI links: clients and fuzzers follow them)."""
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One Server-Sent Event: id (the journal seq), event (its kind), data (JSON)",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "data"],
}
_body_errors: dict[int | str, dict[str, Any]] = {
    **_errors,
    400: {"model": ErrorBody, "description": "The body is not JSON"},
}


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: whatever text a request held, the
    answer can be encoded (a lone surrogate echoed in a problem cannot break it)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, max_length=100)]


def _manager(request: Request) -> RunManager:
    manager: RunManager = request.app.state.runs
    return manager


Manager = Annotated[RunManager, Depends(_manager)]
router = APIRouter(prefix="/api/v1", tags=["runs"], dependencies=[Depends(require_token)])


def _refused(exc: RunRefused) -> JSONResponse:
    headers = {"Retry-After": "1"} if isinstance(exc, QueueFull) else None
    return AsciiJSONResponse(exc.body(), status_code=exc.status, headers=headers)


@router.post(
    "/runs",
    status_code=202,
    operation_id="submitRun",
    response_model=RunOut,
    summary="Submit a run of a library scenario or of a scenario document",
    responses={
        **_body_errors,
        202: {"description": "Queued", "links": RUN_LINKS},
        403: {"model": ErrorBody, "description": "The scenario would run things on this host"},
        404: {"model": ErrorBody, "description": "No such scenario in the library"},
        422: {"model": Problems, "description": "The request or the scenario is not valid"},
        429: {"model": ErrorBody, "description": "The queue is full"},
        503: {"model": ErrorBody, "description": "The service is stopping"},
    },
)
async def submit_run(body: RunSubmission, manager: Manager) -> Response:
    request = RunRequest(
        scenario=body.scenario, document=body.document, vars=body.var_texts(), seed=body.seed
    )
    try:
        view = await manager.submit(request)
    except RunRefused as exc:
        return _refused(exc)
    out = RunOut.of(view)
    return AsciiJSONResponse(
        out.model_dump(mode="json"), status_code=202, headers={"Location": out.links.self}
    )


@router.get(
    "/runs",
    response_model=RunPage,
    operation_id="listRuns",
    summary="Runs, newest first, filtered and paged",
    responses=_errors,
)
async def list_runs(
    manager: Manager,
    scenario: Annotated[str | None, Query(max_length=500, pattern=r"^[^\x00]*$")] = None,
    status: Annotated[list[RunStatus] | None, Query()] = None,
    started_from_ms: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    started_to_ms: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    try:
        before = RunCursor.decode(cursor) if cursor else None
    except ValueError as exc:
        return _problems("the query is not valid", [Problem(path="cursor", message=str(exc))])
    page = await manager.store.query_runs(
        RunQuery(
            scenario=scenario,
            statuses=frozenset(status or ()),
            started_from_ms=started_from_ms,
            started_to_ms=started_to_ms,
            limit=limit,
            before=before,
        )
    )
    out = RunPage(
        runs=[RunOut.of(manager.view_of(record)) for record in page.runs],
        next=page.next.encode() if page.next is not None else None,
    )
    return AsciiJSONResponse(out.model_dump(mode="json"))


@router.get(
    "/runs/{run_id}",
    operation_id="getRun",
    response_model=RunDetail,
    summary="One run: status, and once it ended its steps, checks, recoveries and undos",
    responses={**_errors, 404: {"model": ErrorBody, "description": "No such run"}},
)
async def get_run(run_id: RunId, manager: Manager) -> Response:
    try:
        view = await manager.get(run_id)
    except RunRefused as exc:
        return _refused(exc)
    detail = RunDetail(**RunOut.of(view).model_dump())
    journal = run_file(view.record.summary, "journal.json")
    if journal is not None:
        parts = await asyncio.to_thread(journal_detail, journal)
        detail = detail.model_copy(update=parts)
    return AsciiJSONResponse(detail.model_dump(mode="json"))


@router.post(
    "/runs/{run_id}/cancel",
    operation_id="cancelRun",
    status_code=202,
    response_model=RunOut,
    summary="Cancel a run: a queued one is dropped, a running one undoes its faults",
    responses={
        **_errors,
        404: {"model": ErrorBody, "description": "No such run"},
        409: {"model": ErrorBody, "description": "The run has already ended"},
    },
)
async def cancel_run(run_id: RunId, manager: Manager) -> Response:
    try:
        view = await manager.cancel(run_id)
    except RunRefused as exc:
        return _refused(exc)
    return AsciiJSONResponse(RunOut.of(view).model_dump(mode="json"), status_code=202)


@router.get(
    "/runs/{run_id}/journal",
    operation_id="getRunJournal",
    response_model=Journal,
    summary="The run's journal events stored so far",
    responses={**_errors, 404: {"model": ErrorBody, "description": "No such run"}},
)
async def run_journal(run_id: RunId, manager: Manager) -> Response:
    try:
        await manager.get(run_id)
    except RunRefused as exc:
        return _refused(exc)
    events = await manager.store.events(run_id)
    out = Journal(run_id=run_id, events=[_event_out(e) for e in events])
    return AsciiJSONResponse(out.model_dump(mode="json"))


@router.get(
    "/runs/{run_id}/events",
    operation_id="followRunEvents",
    summary="The run's journal events as Server-Sent Events, live until it ends",
    response_class=StreamingResponse,
    responses={
        **_errors,
        200: {
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
            "description": "One event per journal event (id: its seq; event: its kind); "
            "an `end` event with the run's final status closes the stream",
        },
        404: {"model": ErrorBody, "description": "No such run"},
    },
)
async def run_events(
    run_id: RunId,
    manager: Manager,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> Response:
    try:
        await manager.get(run_id)
    except RunRefused as exc:
        return _refused(exc)
    if (
        last_event_id is not None
        and last_event_id.strip().isascii()
        and last_event_id.strip().isdigit()
    ):
        after = max(after, int(last_event_id))
    return StreamingResponse(
        _sse(manager, run_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/runs/{run_id}/report.html",
    operation_id="getRunReport",
    response_class=Response,
    summary="The run's HTML report",
    responses={
        **_errors,
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "Report"},
        404: {"model": ErrorBody, "description": "No such run, or no report yet"},
    },
)
async def run_report(run_id: RunId, manager: Manager) -> Response:
    return await _report_file(manager, run_id, "report.html")


@router.get(
    "/runs/{run_id}/junit.xml",
    operation_id="getRunJunit",
    response_class=Response,
    summary="The run's JUnit XML report",
    responses={
        **_errors,
        200: {
            "content": {"application/xml": {"schema": {"type": "string"}}},
            "description": "JUnit XML",
        },
        404: {"model": ErrorBody, "description": "No such run, or no report yet"},
    },
)
async def run_junit(run_id: RunId, manager: Manager) -> Response:
    return await _report_file(manager, run_id, "junit.xml")


@router.get(
    "/scenarios",
    operation_id="listScenarios",
    response_model=ScenarioList,
    summary="The scenarios of the service's library",
    responses=_errors,
)
async def list_scenarios(manager: Manager) -> Response:
    found = await asyncio.to_thread(manager.library.scenarios)
    out = ScenarioList(scenarios=[ScenarioOut(name=s.name, file=str(s.path)) for s in found])
    return AsciiJSONResponse(out.model_dump(mode="json"))


@router.post(
    "/scenarios/validate",
    operation_id="validateScenario",
    response_model=ValidationOut,
    summary="Validate a library scenario or a scenario document, with its variables",
    responses={
        **_body_errors,
        404: {"model": ErrorBody, "description": "No such scenario in the library"},
        422: {"model": Problems, "description": "The request is not valid"},
    },
)
async def validate_scenario(body: ValidationRequest, manager: Manager) -> Response:
    try:
        problems = await manager.problems(
            name=body.scenario, document=body.document, overrides=body.var_texts()
        )
    except UnknownScenario as exc:
        return _refused(exc)
    out = ValidationOut(valid=not problems, problems=[scenario_problem(p) for p in problems])
    return AsciiJSONResponse(out.model_dump(mode="json"))


def install_runs_api(app: FastAPI, manager: RunManager) -> None:
    """Serve the runs API of ``manager`` on ``app``; request errors answer as :class:`Problems`."""
    app.state.runs = manager
    app.include_router(router)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            Problem(
                path=".".join(str(part) for part in error.get("loc", ())),
                message=str(error.get("msg", "not valid")),
            )
            for error in exc.errors()
        ]
        return _problems("the request is not valid", problems)

    async def storage_down(request: Request, exc: Exception) -> Response:
        return AsciiJSONResponse(
            {"detail": f"the run store does not answer: {exc}"}, status_code=503
        )

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StorageUnavailable, storage_down)


# -- helpers -------------------------------------------------------------------------------


def scenario_problem(problem: ScenarioProblem) -> Problem:
    return Problem(
        file=problem.file,
        line=problem.position.line,
        column=problem.position.column,
        path=problem.path,
        message=problem.message,
    )


def _problems(detail: str, problems: list[Problem]) -> JSONResponse:
    body = Problems(detail=detail, problems=problems)
    return AsciiJSONResponse(body.model_dump(mode="json"), status_code=422)


def _event_out(event: JournalEvent) -> JournalEventOut:
    data = dict(event.data)
    at_ms = data.pop("at_ms", event.at_ms)
    return JournalEventOut(
        seq=event.seq,
        at_ms=float(at_ms) if isinstance(at_ms, int | float) else float(event.at_ms),
        kind=event.kind,
        data=data,
    )


async def _sse(manager: RunManager, run_id: str, after: int) -> AsyncIterator[bytes]:
    stream = manager.follow(run_id, after)
    pending: asyncio.Task[JournalEvent] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait([pending], timeout=KEEP_ALIVE_S)
            if not done:
                yield b": keep-alive\n\n"
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                break
            except RunRefused as exc:
                yield _sse_frame("error", {"detail": exc.reason})
                return
            payload = _event_out(event).model_dump(mode="json")
            yield _sse_frame(event.kind, payload, event_id=str(event.seq))
        view = await manager.get(run_id)
        yield _sse_frame("end", {"run_id": run_id, "status": view.record.status.value})
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait([pending])  # the generator must be idle before it is closed
        await stream.aclose()


def _sse_frame(kind: str, payload: dict[str, Any], event_id: str | None = None) -> bytes:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {_one_line(kind)}")
    lines.append("data: " + json.dumps(payload, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


async def _report_file(manager: RunManager, run_id: str, name: str) -> Response:
    try:
        view = await manager.get(run_id)
    except RunRefused as exc:
        return _refused(exc)
    path = run_file(view.record.summary, name)
    if path is None:
        return AsciiJSONResponse(
            {"detail": f"run {run_id} has no {name} (yet: {view.record.status.value})"},
            status_code=404,
        )
    return FileResponse(path, media_type=REPORT_FILES[name])
