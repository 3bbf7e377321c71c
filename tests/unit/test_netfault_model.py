"""netfault's faults as JSON (the control channel's and the undo journal's form), the
control requests' replies, and the token bucket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from test_coordinator.netfault.control import handle_request
from test_coordinator.netfault.errors import FaultSpecError
from test_coordinator.netfault.model import (
    FAULT_KINDS,
    Bandwidth,
    Blackhole,
    ConnectionLoss,
    Direction,
    Fault,
    Latency,
    LossAction,
    Partition,
    Pulse,
    Refuse,
    Reset,
    SlowClose,
    fault_from_json,
    fault_to_json,
    pulse_from_json,
)
from test_coordinator.netfault.proxy import NetfaultProxy
from test_coordinator.netfault.shaping import TokenBucket

EVERY_FAULT: list[Fault] = [
    Latency(ms=20, jitter_ms=5, direction=Direction.BOTH, seed=3),
    Bandwidth(bytes_per_s=1000, direction=Direction.UPSTREAM),
    Reset(),
    Refuse(),
    Blackhole(direction=Direction.DOWNSTREAM),
    SlowClose(delay_ms=250),
    ConnectionLoss(probability=0.25, how=LossAction.CLOSE, seed=1),
    Partition(direction=Direction.UPSTREAM),
]


def test_every_kind_has_an_example() -> None:
    assert sorted(type(fault).KIND for fault in EVERY_FAULT) == sorted(FAULT_KINDS)


@pytest.mark.parametrize("fault", EVERY_FAULT, ids=lambda fault: type(fault).KIND)
def test_a_fault_survives_json(fault: Fault) -> None:
    as_json = json.loads(json.dumps(fault_to_json(fault)))

    assert fault_from_json(as_json) == fault


def test_json_spells_out_every_field_with_its_default() -> None:
    assert fault_to_json(fault_from_json({"kind": "latency", "ms": 20})) == {
        "kind": "latency",
        "ms": 20.0,
        "jitter_ms": 0.0,
        "direction": "downstream",
        "seed": None,
    }
    assert fault_to_json(Partition()) == {"kind": "partition", "direction": "both"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], 'a fault is a JSON object with a "kind"'),
        ({"ms": 1}, "unknown fault kind None (one of: latency, bandwidth, reset, refuse,"),
        ({"kind": "netem"}, "unknown fault kind 'netem'"),
        ({"kind": "latency"}, "latency: missing field ms"),
        ({"kind": "latency", "ms": "20"}, "latency: ms must be a finite number, not '20'"),
        ({"kind": "latency", "ms": True}, "latency: ms must be a finite number, not True"),
        ({"kind": "latency", "ms": -1}, "latency: ms must be >= 0"),
        ({"kind": "latency", "ms": 5, "jitter_ms": 6}, "latency: jitter_ms must be in [0, ms]"),
        ({"kind": "latency", "ms": 1, "msec": 2}, "latency: unknown field(s) msec (accepted:"),
        (
            {"kind": "latency", "ms": 1, "direction": "in"},
            "latency: direction must be one of upstream,",
        ),
        ({"kind": "bandwidth", "bytes_per_s": 1.5}, "bandwidth: bytes_per_s must be an integer"),
        ({"kind": "bandwidth", "bytes_per_s": 0}, "bandwidth: bytes_per_s must be > 0"),
        (
            {"kind": "connection_loss", "probability": 2},
            "connection_loss: probability must be in [0, 1]",
        ),
        (
            {"kind": "connection_loss", "probability": 1, "how": 3},
            "connection_loss: how must be one of reset,",
        ),
        ({"kind": "reset", "direction": "both"}, "reset: unknown field(s) direction"),
    ],
)
def test_a_malformed_fault_is_refused_with_the_field_named(data: object, message: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        fault_from_json(data)

    assert str(caught.value).startswith(message)


def test_a_pulse_needs_both_phases_of_at_least_a_millisecond() -> None:
    assert pulse_from_json({"on_ms": 100, "off_ms": 50}) == Pulse(on_ms=100, off_ms=50)
    with pytest.raises(FaultSpecError, match="pulse: off_ms must be >= 1"):
        pulse_from_json({"on_ms": 100, "off_ms": 0})
    with pytest.raises(FaultSpecError, match="pulse: unknown field"):
        pulse_from_json({"on_ms": 1, "off_ms": 1, "kind": "x"})


def test_token_bucket_spends_its_burst_then_lets_bytes_leave_at_the_rate() -> None:
    bucket = TokenBucket(rate=1000, burst=100, now=0.0)

    assert bucket.reserve(100, 0.0) == 0.0
    assert bucket.reserve(500, 0.0) == pytest.approx(0.5)
    assert bucket.reserve(500, 0.0) == pytest.approx(1.0)  # in debt: after the one before
    assert bucket.reserve(100, 5.0) == 5.0  # refilled (up to the burst) meanwhile


# --- control requests --------------------------------------------------------------------


@pytest.fixture
async def proxy() -> AsyncIterator[NetfaultProxy]:
    running = NetfaultProxy(("127.0.0.1", 0), ("127.0.0.1", 9))
    await running.start()
    yield running
    await running.close()


def ask(proxy: NetfaultProxy, request: object) -> dict[str, object]:
    return handle_request(proxy, json.dumps(request).encode())


async def test_set_state_clear_through_requests(proxy: NetfaultProxy) -> None:
    fault = {"kind": "latency", "ms": 20}
    pulse = {"on_ms": 1000, "off_ms": 1000}

    assert ask(proxy, {"op": "set", "id": "f1", "fault": fault}) == {
        "ok": True,
        "id": "f1",
        "replaced": False,
    }
    assert ask(proxy, {"op": "set", "id": "f1", "fault": fault, "pulse": pulse})["replaced"]
    state = ask(proxy, {"op": "state"})
    cleared = ask(proxy, {"op": "clear", "id": "f1"})
    again = ask(proxy, {"op": "clear", "id": "f1"})

    assert state["listen"] == f"127.0.0.1:{proxy.port}"
    assert state["upstream"] == "127.0.0.1:9"
    assert state["faults"] == [
        {
            "id": "f1",
            "fault": fault_to_json(Latency(ms=20)),
            "pulse": {"on_ms": 1000.0, "off_ms": 1000.0},
            "active": True,
            "cycles": 1,
            "stats": {
                "connections": 0,
                "bytes_delayed": 0,
                "bytes_dropped": 0,
                "eofs_delayed": 0,
                "resets": 0,
                "closes": 0,
                "refusing_ms": 0,
            },
        }
    ]
    assert cleared["cleared"] is True
    assert cleared["stats"] == {
        "connections": 0,
        "bytes_delayed": 0,
        "bytes_dropped": 0,
        "eofs_delayed": 0,
        "resets": 0,
        "closes": 0,
        "refusing_ms": 0,
    }
    # cleared already: said so, with what it did (an undo tried again still reports it)
    assert again == {"ok": True, "id": "f1", "cleared": False, "stats": cleared["stats"]}


async def test_clear_all_and_stats(proxy: NetfaultProxy) -> None:
    ask(proxy, {"op": "set", "id": "a", "fault": {"kind": "reset"}})
    ask(proxy, {"op": "set", "id": "b", "fault": {"kind": "refuse"}})

    stats = ask(proxy, {"op": "stats"})
    assert ask(proxy, {"op": "clear_all"}) == {"ok": True, "cleared": ["a", "b"]}

    assert stats["connections_open"] == 0
    assert sorted(stats["faults"]) == ["a", "b"]  # type: ignore[call-overload]
    assert ask(proxy, {"op": "state"})["faults"] == []


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json", "invalid JSON: Expecting value"),
        (b"\xff\xfe", "invalid JSON:"),
        (b"[1, 2]", 'a request is a JSON object with an "op"'),
        (b'{"op": "explode"}', "unknown op 'explode' (one of: set, clear, clear_all, state,"),
        (b'{"op": "state", "verbose": true}', "state: unknown field(s) verbose"),
        (b'{"op": "set", "fault": {"kind": "reset"}}', '"id" must be a string'),
        (b'{"op": "set", "id": "x"}', '"set" needs a "fault"'),
        (b'{"op": "set", "id": "", "fault": {"kind": "reset"}}', "a fault id is 1 to 200"),
        (b'{"op": "set", "id": "x", "fault": {"kind": "nope"}}', "unknown fault kind 'nope'"),
        (b'{"op": "set", "id": "x", "fault": {"kind": "reset"}, "pulse": 5}', "a pulse is a"),
        (b'{"op": "clear", "id": 7}', '"id" must be a string'),
    ],
)
async def test_bad_requests_get_a_clear_error(
    proxy: NetfaultProxy, line: bytes, error: str
) -> None:
    reply = handle_request(proxy, line)

    assert reply["ok"] is False
    assert str(reply["error"]).startswith(error)
    assert proxy.faults == []
