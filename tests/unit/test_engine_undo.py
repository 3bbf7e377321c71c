"""The undo ledger: durable before the fault, newest first, failures reported not fatal."""

from __future__ import annotations

from engine_fakes import InMemoryRunStore

from test_coordinator.engine.journal import Journal, RunClock
from test_coordinator.engine.undo import UndoEntry, UndoLedger
from test_coordinator.ports.storage import UndoStatus


def ledger() -> tuple[UndoLedger, InMemoryRunStore, Journal]:
    store = InMemoryRunStore()
    journal = Journal("run", RunClock(lambda: 0.0))
    return UndoLedger(store, "run", journal, lambda: 1_000), store, journal


async def test_register_writes_a_pending_record_first() -> None:
    undo, store, _ = ledger()

    entry = await undo.register("api", {"action": "resume", "pid": 7})

    assert [("recorded", "run-u1")] == store.undo_log
    assert UndoStatus.PENDING == store.undos["run-u1"].status
    assert {"action": "resume", "pid": 7} == dict(store.undos["run-u1"].action)
    assert [entry] == undo.pending


async def test_unwind_goes_newest_first_and_survives_a_failure() -> None:
    undo, store, journal = ledger()
    await undo.register("api", {"action": "resume"})
    await undo.register("db", {"action": "start"})
    await undo.register("api", {"action": "start"})
    done: list[str] = []

    async def perform(entry: UndoEntry) -> str:
        done.append(f"{entry.action} {entry.service}")
        if entry.service == "db":
            raise RuntimeError("db would not start")
        return "ok"

    results = await undo.unwind(perform)

    assert ["start api", "start db", "resume api"] == done
    assert ["done", "failed", "done"] == [r.status for r in results]
    assert "db would not start" == results[1].detail
    assert [] == await store.pending_undos()
    assert 3 == sum(1 for e in journal.events if e.kind == "undo.finished")


async def test_settled_entries_are_not_undone() -> None:
    undo, store, _ = ledger()
    await undo.register("api", {"action": "resume"})
    await undo.register("db", {"action": "resume"})

    await undo.settle("api", "resume", "resumed by step 3")
    results = await undo.unwind(lambda entry: _ok())

    assert ["db"] == [r.service for r in results]
    assert "resumed by step 3" == store.undos["run-u1"].detail


async def _ok() -> str:
    return "ok"
