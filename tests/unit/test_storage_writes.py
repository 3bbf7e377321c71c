"""Pending writes survive the trip through JSON (the outbox's format) unchanged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from test_coordinator.adapters.storage import writes
from test_coordinator.adapters.storage.writes import PendingWrite
from test_coordinator.ports.live_state import LiveRun
from test_coordinator.ports.storage import (
    JournalEvent,
    RunRecord,
    RunStatus,
    UndoRecord,
    UndoStatus,
)

texts = st.text(max_size=20)
millis = st.integers(min_value=0, max_value=2**53)
json_data = st.dictionaries(texts, st.none() | st.booleans() | st.integers() | texts, max_size=3)
runs = st.builds(
    RunRecord, texts, texts, st.sampled_from(RunStatus), millis, st.none() | millis, json_data
)
events = st.builds(JournalEvent, texts, st.integers(0, 2**31 - 1), millis, texts, json_data)
undos = st.builds(
    UndoRecord, texts, texts, texts, json_data, st.sampled_from(UndoStatus), millis, texts
)
live_runs = st.builds(LiveRun, texts, texts, st.sampled_from(RunStatus), millis)


def through_json(write: PendingWrite) -> PendingWrite:
    return PendingWrite.from_json(write.to_json())


@given(runs)
def test_run_round_trip(run: RunRecord) -> None:
    assert run == writes.run_from_row(through_json(writes.save_run(run)).payload)


@given(st.lists(events, max_size=3))
def test_events_round_trip(batch: list[JournalEvent]) -> None:
    rows = through_json(writes.append_events(batch)).payload["events"]
    assert batch == [writes.event_from_row(row) for row in rows]


@given(undos)
def test_undo_round_trip(undo: UndoRecord) -> None:
    assert undo == writes.undo_from_row(through_json(writes.record_undo(undo)).payload)


@given(live_runs)
def test_live_run_round_trip(run: LiveRun) -> None:
    assert run == writes.live_run_from_row(through_json(writes.publish_live_run(run)).payload)


def test_finish_undo_round_trip() -> None:
    write = writes.finish_undo("u1", UndoStatus.FAILED, "container gone")
    assert write == through_json(write)
