"""What every RunStore must do, whatever holds the rows.

A test module subclasses :class:`RunStoreContract` (as ``Test...``) and provides a
``store`` fixture: tests/unit/test_storage_sql.py on the SQLite file (SQLAlchemy and
sqlite3), tests/integration/test_storage_postgres_contract.py on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from test_coordinator.ports.storage import (
    JournalEvent,
    RunCursor,
    RunQuery,
    RunRecord,
    RunStatus,
    RunStore,
    UndoRecord,
    UndoStatus,
)


def run(run_id: str, started_at_ms: int = 1, **changes: object) -> RunRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "scenario": "kill-exchange",
        "status": RunStatus.RUNNING,
        "started_at_ms": started_at_ms,
    }
    fields.update(changes)
    return RunRecord(**fields)  # type: ignore[arg-type]


def ids(runs: Iterable[RunRecord]) -> list[str]:
    return [r.run_id for r in runs]


async def save_all(store: RunStore, *runs: RunRecord) -> None:
    for record in runs:
        await store.save_run(record)


async def all_pages(store: RunStore, query: RunQuery) -> list[list[str]]:
    """Every page of ``query``, following each page's cursor through its text form (as
    an API client would)."""
    pages: list[list[str]] = []
    while True:
        page = await store.query_runs(query)
        pages.append(ids(page.runs))
        if page.next is None:
            return pages
        assert len(pages) < 100, "paging does not end"
        query = RunQuery(
            scenario=query.scenario,
            statuses=query.statuses,
            started_from_ms=query.started_from_ms,
            started_to_ms=query.started_to_ms,
            limit=query.limit,
            before=RunCursor.decode(page.next.encode()),
        )


class RunStoreContract:
    """The tests; the subclass's module provides the ``store`` fixture."""

    # -- runs, events, undo records ---------------------------------------------------

    async def test_save_run_inserts_then_updates(self, store: RunStore) -> None:
        await store.save_run(run("r1", summary={"steps": 1}))
        finished = run("r1", status=RunStatus.PASSED, ended_at_ms=9, summary={"steps": 2})

        await store.save_run(finished)

        assert finished == await store.get_run("r1")
        assert await store.get_run("missing") is None

    async def test_every_status_is_stored_and_read_back(self, store: RunStore) -> None:
        for index, status in enumerate(RunStatus):
            await store.save_run(run(f"r-{status.value}", index, status=status))

        for status in RunStatus:
            stored = await store.get_run(f"r-{status.value}")
            assert stored is not None and stored.status is status

    async def test_list_runs_newest_first_with_limit(self, store: RunStore) -> None:
        for index in range(5):
            await store.save_run(run(f"r{index}", started_at_ms=index))

        listed = await store.list_runs(limit=3)

        assert [r.run_id for r in listed] == ["r4", "r3", "r2"]

    async def test_events_in_sequence_and_duplicates_ignored(self, store: RunStore) -> None:
        """Replaying an append (after a crash) must not fail nor duplicate events."""
        second = JournalEvent("r1", 2, 20, "probe", {"ok": True})
        first = JournalEvent("r1", 1, 10, "started")
        await store.append_events([second, first])

        await store.append_events([first])
        await store.append_events([])

        assert [first, second] == await store.events("r1")
        assert await store.events("other") == []

    async def test_many_events_in_one_append(self, store: RunStore) -> None:
        events = [JournalEvent("r1", seq, seq, "tick") for seq in range(2500)]

        await store.append_events(events)

        assert events == await store.events("r1")

    async def test_undo_records_until_finished(self, store: RunStore) -> None:
        early = UndoRecord("u1", "r1", "exchange-OKX", {"restart": True}, created_at_ms=1)
        late = UndoRecord("u2", "r1", "redis", {"unpause": True}, created_at_ms=2)
        await store.record_undo(late)
        await store.record_undo(early)

        await store.finish_undo("u2", UndoStatus.DONE, "restarted")
        await store.finish_undo("unknown", UndoStatus.FAILED)

        assert [early] == await store.pending_undos()

    # -- listing runs (RunQuery) --------------------------------------------------------

    async def test_query_without_filters_is_list_runs(self, store: RunStore) -> None:
        await save_all(store, *(run(f"r{i}", started_at_ms=10 * i) for i in range(4)))

        page = await store.query_runs(RunQuery())

        assert ids(page.runs) == ["r3", "r2", "r1", "r0"]
        assert page.next is None
        assert list(page.runs) == await store.list_runs()
        assert ids(await store.list_runs(limit=2)) == ["r3", "r2"]

    async def test_query_of_an_empty_store(self, store: RunStore) -> None:
        page = await store.query_runs(RunQuery(scenario="none"))

        assert page.runs == () and page.next is None

    async def test_filter_by_scenario(self, store: RunStore) -> None:
        await save_all(
            store,
            run("a1", 1, scenario="alpha"),
            run("b1", 2, scenario="beta"),
            run("a2", 3, scenario="alpha"),
            run("ab", 4, scenario="alpha-beta"),
        )

        alpha = await store.query_runs(RunQuery(scenario="alpha"))

        assert ids(alpha.runs) == ["a2", "a1"]
        assert ids((await store.query_runs(RunQuery(scenario="Alpha"))).runs) == []

    async def test_filter_by_several_statuses(self, store: RunStore) -> None:
        await save_all(
            store,
            run("queued", 1, status=RunStatus.QUEUED),
            run("running", 2, status=RunStatus.RUNNING),
            run("passed", 3, status=RunStatus.PASSED),
            run("failed", 4, status=RunStatus.FAILED),
            run("cancelled", 5, status=RunStatus.CANCELLED),
            run("aborted", 6, status=RunStatus.ABORTED),
        )

        unfinished = RunQuery(statuses=frozenset({RunStatus.QUEUED, RunStatus.RUNNING}))
        stopped = RunQuery(statuses=frozenset({RunStatus.CANCELLED, RunStatus.ABORTED}))
        one = RunQuery(statuses=frozenset({RunStatus.FAILED}))

        assert ids((await store.query_runs(unfinished)).runs) == ["running", "queued"]
        assert ids((await store.query_runs(stopped)).runs) == ["aborted", "cancelled"]
        assert ids((await store.query_runs(one)).runs) == ["failed"]

    async def test_filter_by_time_range_from_inclusive_to_exclusive(self, store: RunStore) -> None:
        await save_all(store, *(run(f"t{ms}", ms) for ms in (100, 200, 300, 400)))

        async def between(start: int | None, end: int | None) -> list[str]:
            query = RunQuery(started_from_ms=start, started_to_ms=end)
            return ids((await store.query_runs(query)).runs)

        assert await between(200, 400) == ["t300", "t200"]
        assert await between(200, None) == ["t400", "t300", "t200"]
        assert await between(None, 200) == ["t100"]
        assert await between(201, 300) == []
        assert await between(400, 100) == []

    async def test_filters_combine(self, store: RunStore) -> None:
        await save_all(
            store,
            run("hit-old", 100, scenario="s", status=RunStatus.PASSED),
            run("hit-new", 200, scenario="s", status=RunStatus.FAILED),
            run("other-scenario", 150, scenario="t", status=RunStatus.PASSED),
            run("other-status", 160, scenario="s", status=RunStatus.ERROR),
            run("too-late", 300, scenario="s", status=RunStatus.PASSED),
        )

        query = RunQuery(
            scenario="s",
            statuses=frozenset({RunStatus.PASSED, RunStatus.FAILED}),
            started_from_ms=100,
            started_to_ms=300,
        )

        assert ids((await store.query_runs(query)).runs) == ["hit-new", "hit-old"]

    async def test_paging_seven_runs_by_three(self, store: RunStore) -> None:
        await save_all(store, *(run(f"p{i}", 1000 + i) for i in range(7)))

        pages = await all_pages(store, RunQuery(limit=3))

        assert [len(p) for p in pages] == [3, 3, 1]
        assert [run_id for page in pages for run_id in page] == [
            f"p{i}" for i in reversed(range(7))
        ]

    async def test_paging_a_filtered_listing(self, store: RunStore) -> None:
        for i in range(12):
            scenario = "wanted" if i % 2 else "other"
            await store.save_run(run(f"f{i:02}", i, scenario=scenario))

        pages = await all_pages(store, RunQuery(scenario="wanted", limit=2))

        assert pages == [["f11", "f09"], ["f07", "f05"], ["f03", "f01"]]

    async def test_a_full_last_page_has_no_next(self, store: RunStore) -> None:
        await save_all(store, *(run(f"e{i}", i) for i in range(6)))

        pages = await all_pages(store, RunQuery(limit=3))

        assert pages == [["e5", "e4", "e3"], ["e2", "e1", "e0"]]

    async def test_equal_start_times_are_ordered_by_run_id_and_paged(self, store: RunStore) -> None:
        await save_all(
            store,
            run("b", 500),
            run("e", 500),
            run("a", 500),
            run("d", 500),
            run("c", 500),
            run("newer", 501),
            run("older", 499),
        )

        pages = await all_pages(store, RunQuery(limit=2))

        assert pages == [["newer", "e"], ["d", "c"], ["b", "a"], ["older"]]

    async def test_the_cursor_is_a_position_not_a_run(self, store: RunStore) -> None:
        """Keyset paging: runs saved or changed after a page do not shift the next one."""
        await save_all(store, *(run(f"k{i}", 10 * i) for i in range(5)))
        first = await store.query_runs(RunQuery(limit=2))
        assert ids(first.runs) == ["k4", "k3"] and first.next is not None

        await store.save_run(run("brand-new", 1000))
        await store.save_run(run("k3", 30, status=RunStatus.PASSED))
        second = await store.query_runs(RunQuery(limit=2, before=first.next))

        assert ids(second.runs) == ["k2", "k1"]
        between = RunQuery(before=RunCursor(25, "zzz"))
        assert ids((await store.query_runs(between)).runs) == ["k2", "k1", "k0"]

    async def test_a_run_id_with_sql_and_unicode_survives_the_cursor(self, store: RunStore) -> None:
        """The tie-break follows the store's collation (PostgreSQL's may not be bytewise):
        pages must agree with the store's own single listing."""
        tricky = ["o'brien; DROP TABLE runs", "ünïcode-β", 'quote"d', "Upper", "lower"]
        await save_all(store, *(run(run_id, 7) for run_id in tricky))

        pages = await all_pages(store, RunQuery(limit=1))

        whole = ids((await store.query_runs(RunQuery())).runs)
        assert sorted(whole) == sorted(tricky)
        assert [run_id for page in pages for run_id in page] == whole

    async def test_cursors_at_the_ends_of_the_column(self, store: RunStore) -> None:
        await save_all(store, run("a", 0), run("b", -5), run("c", 2**62))

        everything = RunQuery(before=RunCursor(2**63 - 1, ""))
        nothing = RunQuery(before=RunCursor(-(2**63), "zzz"))

        assert ids((await store.query_runs(everything)).runs) == ["c", "a", "b"]
        assert ids((await store.query_runs(nothing)).runs) == []

    async def test_a_garbage_cursor_names_itself(self, store: RunStore) -> None:
        with pytest.raises(ValueError, match="invalid run cursor 'not-a-cursor!'"):
            RunCursor.decode("not-a-cursor!")
