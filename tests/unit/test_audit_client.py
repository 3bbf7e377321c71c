"""The audit query client speaks the correlator's JSON and turns every failure into our errors."""

import httpx
import pytest

from test_coordinator.adapters.audit import AuditClient
from test_coordinator.adapters.audit.wire import (
    MalformedAuditJson,
    correlation_from_json,
    correlation_to_json,
    event_from_json,
    event_to_json,
    parse_instant_ms,
)
from test_coordinator.ports.audit import (
    RECEIVED_NOT_SENT,
    AuditEvent,
    AuditQueryFailed,
    AuditUnavailable,
    ChaosEvent,
    Correlation,
    FaultObservation,
    FaultRecord,
    OrderAccounting,
    OrderDifference,
    Outage,
    SenderOrders,
    ServiceStart,
)

T0 = 1_700_000_000_000
OUTAGE = Outage("trading-system-engine", "exchange", T0 + 50, T0 + 700)
CORRELATION = Correlation(
    correlation_id="run-1",
    from_ms=T0,
    to_ms=T0 + 9000,
    event_count=42,
    chaos_events=(ChaosEvent("fault.injected", T0 + 10, "test-coordinator", "run-1", "exchange"),),
    faults=(
        FaultRecord(
            fault_id="f1",
            target="exchange",
            fault="restart",
            injected_at_ms=T0 + 10,
            undone_at_ms=None,
            correlation_id="run-1",
            observations=(
                FaultObservation("trading-system-engine", True, OUTAGE, 40),
                FaultObservation("risk", False),
            ),
        ),
    ),
    outages=(OUTAGE, Outage("risk", "exchange", T0 + 8000, None)),
    service_starts=(ServiceStart("exchange-OKX", T0 + 300, {"book_reset": True}),),
    orders=OrderAccounting(sent=10, acknowledged=8, received=9, failed=1, in_flight=1,
                           lost=1, lost_order_ids=("o-3",), cut_off_ms=T0 + 9000,
                           received_unacknowledged=1, acknowledged_after=1,
                           differences=(OrderDifference(RECEIVED_NOT_SENT, 1, ("x-1",)),),
                           senders=(SenderOrders("trading-system-engine", T0, 10, 8, 1),)),
)  # fmt: skip


def client_answering(response: httpx.Response | Exception) -> tuple[AuditClient, list[httpx.URL]]:
    seen: list[httpx.URL] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if isinstance(response, Exception):
            raise response
        return response

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return AuditClient("http://audit.test/", client=http), seen


def test_a_correlation_survives_the_trip_through_json() -> None:
    assert CORRELATION == correlation_from_json(correlation_to_json(CORRELATION))


def test_an_answer_without_the_cut_off_accounting_still_reads() -> None:
    """A correlator from before the cut-off: the fields it lacks read as nothing."""
    body = correlation_to_json(CORRELATION)
    keep = ("sent", "acknowledged", "received", "failed", "in_flight", "lost", "lost_order_ids")
    body["orders"] = {k: body["orders"][k] for k in keep}

    orders = correlation_from_json(body).orders

    assert (10, 8, None, (), ()) == (
        orders.sent, orders.acknowledged, orders.cut_off_ms, orders.differences, orders.senders
    )  # fmt: skip


def test_the_json_spells_out_durations_for_readers_without_our_types() -> None:
    body = correlation_to_json(CORRELATION)

    assert [650, None] == [o["duration_ms"] for o in body["outages"]]
    assert [False] == [f["observed_by_all"] for f in body["faults"]]


def test_an_event_survives_the_trip_through_json() -> None:
    event = AuditEvent("order.sent", T0, None, "engine", {"order_id": "a"})

    assert event == event_from_json(event_to_json(event))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0),
        (float(T0) + 0.7, T0),
        (str(T0), T0),
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T22:13:20.250+00:00", T0 + 250),
        ("2023-11-15T00:13:20+02:00", T0),
        ("2023-11-14T22:13:20", T0),
    ],
)
def test_instants_are_epoch_milliseconds_or_iso_8601(value: object, expected: int) -> None:
    assert expected == parse_instant_ms(value)


@pytest.mark.parametrize("value", [None, True, "soon", float("nan"), [1]])
def test_other_instants_are_refused(value: object) -> None:
    with pytest.raises(MalformedAuditJson):
        parse_instant_ms(value)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"kind": "k", "at": 1},
        {"source": "s", "at": 1},
        {"source": "s", "kind": "k"},
        {"source": "s", "kind": "k", "at": 1, "data": [1]},
        {"source": "s", "kind": "k", "at": 1, "correlation_id": 7},
    ],
    ids=["not-object", "no-source", "no-kind", "no-at", "data-list", "cid-number"],
)
def test_malformed_events_are_refused(body: object) -> None:
    with pytest.raises(MalformedAuditJson):
        event_from_json(body)


async def test_correlate_asks_for_the_window_and_reads_the_answer() -> None:
    audit, seen = client_answering(httpx.Response(200, json=correlation_to_json(CORRELATION)))

    async with audit:
        correlation = await audit.correlate("run-1", T0, T0 + 9000, slack_ms=100)

    assert CORRELATION == correlation
    [url] = seen
    assert "/api/v1/correlate" == url.path
    assert {"correlation_id": "run-1", "from": str(T0), "to": str(T0 + 9000),
            "slack_ms": "100"} == dict(url.params)  # fmt: skip


async def test_no_connection_is_unavailable() -> None:
    audit, _ = client_answering(httpx.ConnectError("refused"))

    async with audit:
        with pytest.raises(AuditUnavailable):
            await audit.correlate("run-1")


async def test_a_server_error_is_unavailable() -> None:
    audit, _ = client_answering(httpx.Response(503, text="starting"))

    async with audit:
        with pytest.raises(AuditUnavailable):
            await audit.correlate("run-1")


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(422, json={"detail": "bad from"}),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json={"correlation_id": "run-1"}),
    ],
    ids=["refused", "not-json", "not-a-correlation"],
)
async def test_an_answer_that_is_not_a_correlation_fails_the_query(
    response: httpx.Response,
) -> None:
    audit, _ = client_answering(response)

    async with audit:
        with pytest.raises(AuditQueryFailed):
            await audit.correlate("run-1")


async def test_events_are_read_back_typed() -> None:
    event = AuditEvent("order.sent", T0, None, "engine", {"order_id": "a"})
    audit, seen = client_answering(
        httpx.Response(200, json={"count": 1, "events": [event_to_json(event)]})
    )

    async with audit:
        assert [event] == await audit.events(kind="order.sent")

    assert {"kind": "order.sent"} == dict(seen[0].params)
