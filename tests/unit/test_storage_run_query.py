"""The listing's value types: RunQuery (its filters in memory), RunPage, RunCursor's token."""

from __future__ import annotations

import base64
import json

import pytest

from support.run_store_contract import ids, run
from test_coordinator.ports.storage import RunCursor, RunQuery, RunStatus


def token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        RunCursor(0, "r"),
        RunCursor(1_767_225_600_123, "20260101-000000-dead00"),
        RunCursor(-5, "ünïcode/with+signs=and spaces"),
        RunCursor(2**63 - 1, ""),
        RunCursor(-(2**63), "r"),
    ],
)
def test_a_cursor_survives_its_text_form(cursor: RunCursor) -> None:
    text = cursor.encode()

    assert RunCursor.decode(text) == cursor
    assert text.isascii() and not set(text) - set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not-a-cursor!",
        "abc def",
        "a+b/c",
        "====",
        "x",
        "ünï",
        token([1, "r"]),
        token({"s": 1}),
        token({"s": "1", "r": "r"}),
        token({"s": True, "r": "r"}),
        token({"s": 1.5, "r": "r"}),
        token({"s": 2**63, "r": "r"}),
        token({"s": -(2**63) - 1, "r": "r"}),
        token({"s": 1, "r": 2}),
        token({"s": 1, "r": "r", "extra": 0}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
        base64.urlsafe_b64encode(b"{not json").decode().rstrip("="),
    ],
)
def test_garbage_is_a_value_error_naming_the_cursor(garbage: str) -> None:
    with pytest.raises(ValueError, match="invalid run cursor") as raised:
        RunCursor.decode(garbage)

    assert repr(garbage) in str(raised.value)


def test_a_long_garbage_cursor_is_shortened_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"invalid run cursor '(A){64}\.\.\.'"):
        RunCursor.decode("A" * 10_000 + "!")


def test_a_query_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="limit must be a positive 64-bit integer, not 0"):
        RunQuery(limit=0)


@pytest.mark.parametrize("bound", ["started_from_ms", "started_to_ms"])
def test_time_bounds_must_fit_the_column(bound: str) -> None:
    with pytest.raises(ValueError, match=f"{bound} must be a 64-bit integer, not {2**63}"):
        RunQuery(**{bound: 2**63})  # type: ignore[arg-type]
    assert getattr(RunQuery(**{bound: -(2**63)}), bound) == -(2**63)  # type: ignore[arg-type]


def test_statuses_given_as_text_become_run_statuses() -> None:
    query = RunQuery(statuses=frozenset({"queued", RunStatus.CANCELLED}))  # type: ignore[arg-type]

    assert query.statuses == {RunStatus.QUEUED, RunStatus.CANCELLED}
    with pytest.raises(ValueError, match="'sleeping' is not a valid RunStatus"):
        RunQuery(statuses=frozenset({"sleeping"}))  # type: ignore[arg-type]


def test_queries_are_values() -> None:
    assert RunQuery(scenario="s", before=RunCursor(1, "r")) == RunQuery(
        scenario="s", before=RunCursor(1, "r")
    )
    assert hash(RunQuery(statuses=frozenset({RunStatus.QUEUED}))) == hash(
        RunQuery(statuses=frozenset({RunStatus.QUEUED}))
    )


def test_select_in_memory_filters_orders_and_pages() -> None:
    runs = [
        run("b", 5, scenario="s"),
        run("a", 5, scenario="s"),
        run("c", 5, scenario="s", status=RunStatus.QUEUED),
        run("old", 1, scenario="s"),
        run("other", 9, scenario="t"),
    ]

    first = RunQuery(scenario="s", limit=2).select(runs)
    second = RunQuery(scenario="s", limit=2, before=first.next).select(runs)

    assert ids(first.runs) == ["c", "b"] and first.next == RunCursor(5, "b")
    assert ids(second.runs) == ["a", "old"] and second.next is None
    queued = RunQuery(statuses=frozenset({RunStatus.QUEUED})).select(runs)
    assert ids(queued.runs) == ["c"]
    in_range = RunQuery(started_from_ms=1, started_to_ms=5).select(runs)
    assert ids(in_range.runs) == ["old"]
