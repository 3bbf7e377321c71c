"""The undo ledger: durable before the fault, newest first, failures reported not fatal."""

from __future__ import annotations

from engine_fakes import InMemoryRunStore

from test_coordinator.engine.journal import Journal, RunClock
from test_coordinator.engine.undo import UndoLedger
from test_coordinator.engine.undo_actions import UndoAction, UndoKind
from test_coordinator.ports.storage import UndoRecord, UndoStatus
from test_coordinator.targets.port import TargetSpec


def ledger() -> tuple[UndoLedger, InMemoryRunStore, Journal]:
    store = InMemoryRunStore()
    journal = Journal("run", RunClock(lambda: 0.0))
    return UndoLedger(store, "run", journal, lambda: 1_000), store, journal


def action(kind: UndoKind, service: str, **handle: object) -> UndoAction:
    return UndoAction(
        kind, service, TargetSpec(service, "process", {"command": "x"}), handle=handle
    )


async def test_register_writes_a_pending_record_and_the_journal_first() -> None:
    undo, store, journal = ledger()
    journal.record("step.started", step="1")

    entry = await undo.register(action(UndoKind.RESUME, "api", pid=7, start_ticks=99))

    assert [("recorded", "run-u1")] == store.undo_log
    assert UndoStatus.PENDING == store.undos["run-u1"].status
    stored = UndoAction.from_json(store.undos["run-u1"].action)
    assert stored == entry.undo and {"pid": 7, "start_ticks": 99} == dict(stored.handle)
    assert [entry] == undo.pending
    # nothing that led up to the fault can be lost: the journal is stored with the undo
    assert ["step.started", "undo.registered"] == [e.kind for e in store.events_by_run["run"]]


async def test_unwind_goes_newest_first_and_survives_a_failure() -> None:
    undo, store, journal = ledger()
    await undo.register(action(UndoKind.RESUME, "api"))
    await undo.register(action(UndoKind.START, "db"))
    await undo.register(action(UndoKind.START, "api"))
    done: list[str] = []

    async def perform(undo_action: UndoAction) -> str:
        done.append(f"{undo_action.kind} {undo_action.service}")
        if undo_action.service == "db":
            raise RuntimeError("db would not start")
        return "ok"

    results = await undo.unwind(perform)

    assert ["start api", "start db", "resume api"] == done
    assert ["done", "failed", "done"] == [r.status for r in results]
    assert "db would not start" == results[1].detail
    assert [] == await store.pending_undos()
    assert 3 == sum(1 for e in journal.events if e.kind == "undo.finished")


async def test_a_start_is_superseded_by_the_removal_of_the_service() -> None:
    """Starting a service the run created only to remove it is skipped, not performed."""
    undo, _, _ = ledger()
    await undo.register(action(UndoKind.REMOVE, "api"))
    await undo.register(action(UndoKind.START, "api"))
    await undo.register(action(UndoKind.START, "db"))
    done: list[str] = []

    async def perform(undo_action: UndoAction) -> str:
        done.append(f"{undo_action.kind} {undo_action.service}")
        return "ok"

    results = await undo.unwind(perform)

    assert ["start db", "remove api"] == done
    assert [("start", "api", "done")] == [
        (r.action, r.service, r.status) for r in results if "superseded" in r.detail
    ]


async def test_settled_entries_are_not_undone() -> None:
    undo, store, _ = ledger()
    await undo.register(action(UndoKind.RESUME, "api"))
    await undo.register(action(UndoKind.RESUME, "db"))

    await undo.settle("api", UndoKind.RESUME, "resumed by step 3")
    results = await undo.unwind(lambda undo_action: _ok())

    assert ["db"] == [r.service for r in results]
    assert "resumed by step 3" == store.undos["run-u1"].detail


def test_a_record_from_an_older_version_is_refused_with_a_reason() -> None:
    try:
        UndoAction.from_json({"action": "resume", "service": "api", "pid": 7})
    except ValueError as exc:
        assert "not an undo action this version can perform" in str(exc)
    else:
        raise AssertionError("accepted a record without a target")


async def _ok() -> str:
    return "ok"


async def test_concurrent_registrations_get_distinct_records() -> None:
    """Services started side by side (setup, parallel faults) each keep their own record."""
    import asyncio

    undo, store, _ = ledger()
    record = store.record_undo

    async def slow_record(undo_record: UndoRecord) -> None:
        await asyncio.sleep(0)  # a real store awaits its server: registrations interleave
        await record(undo_record)

    store.record_undo = slow_record  # type: ignore[method-assign]

    await asyncio.gather(*(undo.register(action(UndoKind.REMOVE, s)) for s in ("a", "b", "c")))

    assert {"a", "b", "c"} == {u.target for u in store.undos.values()}
    assert 3 == len(undo.pending)
