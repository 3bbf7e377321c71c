"""report.html: rendered from a run's journal (a run with the engine's fakes) and its logs."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from engine_fakes import harness
from engine_scenarios import scenario
from hypothesis import given
from hypothesis import strategies as st

from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.results import RunResult
from test_coordinator.reporting import write_run_reports
from test_coordinator.reporting.html import HTML_FILE, render_html, write_html_report
from test_coordinator.reporting.html_logs import parse_log, read_service_logs
from test_coordinator.reporting.html_timeline import nice_step

HOSTILE_STEP = "bounce <img src=x onerror=alert(1)>"
HOSTILE_LINE = "<script>alert('pwned')</script> & \"quoted\""

RUN = f"""
name: report-sample
steps:
  - name: "{HOSTILE_STEP}"
    restart: api
  - expect: {{healthy: api, within: 1s}}
  - name: traffic
    background:
      load: {{url: "fake://api/", rate: 10}}
  - name: stop db
    stop: db
checks:
  - name: api recovers
    recovery_time: {{service: api, max: 5s}}
  - name: db recovers
    recovery_time: {{service: db, max: 5s}}
"""


async def a_run(tmp_path: Path, body: str = RUN) -> RunResult:
    return await run_scenario(
        scenario(body), harness().deps, RunOptions("run-html", 7, tmp_path / "reports")
    )


def journal_of(result: RunResult) -> dict[str, Any]:
    """The journal as journal.json holds it."""
    [journal_path, *_] = write_run_reports(result)
    data: dict[str, Any] = json.loads(journal_path.read_text(encoding="utf-8"))
    return data


def stamp(journal: Mapping[str, Any], at_ms: float) -> str:
    """An ISO timestamp ``at_ms`` after the run's start, as a service would log it."""
    started = datetime.fromisoformat(journal["started_at"])
    return (started + timedelta(milliseconds=at_ms)).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def failed_run(tmp_path: Path) -> RunResult:
    """api restarted (recovers), db stopped for good (its check fails)."""
    return await a_run(tmp_path)


def test_nothing_in_the_page_is_fetched_from_anywhere(failed_run: RunResult) -> None:
    """No src/href to another host, no CSS url() or @import, and a CSP that forbids fetching."""
    page = render_html(failed_run)

    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.I)
    assert "url(" not in page and "@import" not in page
    assert "<link" not in page
    [policy] = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy.startswith("default-src &#x27;none&#x27;")


def test_the_csp_lets_the_inline_style_and_script_run(failed_run: RunResult) -> None:
    """Each inline block's hash is in the policy (else the browser would refuse it)."""
    page = render_html(failed_run)
    [style] = re.findall(r"<style>(.*?)</style>", page, re.S)
    [script] = re.findall(r"<script>(.*?)</script>", page, re.S)

    for directive, text in (("style-src", style), ("script-src", script)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{directive} &#x27;sha256-{digest}&#x27;" in page


def test_the_verdict_and_its_reason_come_first(failed_run: RunResult) -> None:
    """The outcome in large letters, the reason the run failed, and the counts."""
    page = render_html(failed_run)
    verdict = page[page.index('id="verdict"') : page.index('id="timeline-section"')]

    assert "failed" == failed_run.outcome.value
    assert "verdict failed" in page
    assert ">FAILED<" in verdict
    assert "check 2 (db recovers) failed" in verdict
    assert "checks: 1 of 2 passed" in verdict


def test_every_step_and_check_with_its_outcome_and_message(failed_run: RunResult) -> None:
    """A row per step and per check, marked with its status; the failure message shown."""
    page = render_html(failed_run)

    for step in failed_run.steps:
        row = re.search(rf'<tr class="row-(\w+)" id="step-{re.escape(step.step_id)}">', page)
        assert row is not None and step.status.value == row.group(1)
    for check in failed_run.checks:
        row = re.search(rf'<tr class="row-(\w+)" id="check-{check.index}">(.*?)</tr>', page, re.S)
        assert row is not None and check.status.value == row.group(1)
        assert check.name in row.group(2)
    [failed] = [c for c in failed_run.checks if c.status.value == "failed"]
    assert failed.detail.split(":")[0] in page


def test_the_timeline_marks_faults_and_labels_recovery_windows(failed_run: RunResult) -> None:
    """A mark per fault, a band per recovery window labelled in ms (or "not recovered")."""
    page = render_html(failed_run)
    svg = page[page.index("<svg") : page.index("</svg>")]
    api, _db = failed_run.recoveries

    assert api.recovery_ms is not None
    assert f"restart · {api.recovery_ms:.1f} ms" in svg
    assert f'data-recovery-ms="{api.recovery_ms:.3f}"' in svg
    assert "stop · not recovered" in svg
    assert 2 == svg.count('class="fault-mark"')
    assert '<a href="#fault-1">' in svg and 'id="fault-1"' in page
    assert 'class="mark-healthy"' in svg
    assert f">{api.recovery_ms:.1f} ms</td>" in page


def test_journal_content_is_escaped(failed_run: RunResult) -> None:
    """A step name holding markup is shown as text."""
    page = render_html(failed_run)

    assert "<img" not in page
    assert "bounce &lt;img src=x onerror=alert(1)&gt;" in page


def test_hostile_log_lines_are_escaped(failed_run: RunResult) -> None:
    """A service printing markup shows the markup, it does not run it."""
    journal = journal_of(failed_run)
    api = failed_run.recoveries[0]
    log = parse_log("api", "stdout", "api.out.log", f"{HOSTILE_LINE}\n</pre><b>bold</b>\n")

    page = render_html(journal, [log])

    assert 1 == page.count("<script")
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    assert f"Fault 1: restart api at {api.injected_at_ms:.1f} ms" in page


def test_timestamped_lines_in_the_window_around_a_fault(failed_run: RunResult) -> None:
    """From 2 s before the injection to 2 s after the recovery; inside the outage highlighted."""
    journal = journal_of(failed_run)
    api = failed_run.recoveries[0]
    assert api.recovered_at_ms is not None
    lines = [
        (api.injected_at_ms - 3000, "too early"),
        (api.injected_at_ms - 1000, "before the fault"),
        ((api.injected_at_ms + api.recovered_at_ms) / 2, "during the outage"),
        (api.recovered_at_ms + 1000, "after the recovery"),
        (api.recovered_at_ms + 3000, "too late"),
    ]
    text = "".join(f"{stamp(journal, at)} [info] {what}\n" for at, what in lines)
    text += "Traceback (most recent call last): continuation of the line before\n"
    other = f"{stamp(journal, api.injected_at_ms + 5)} [warning] db saw api go away\n"

    page = render_html(
        journal,
        [
            parse_log("api", "stderr", "api.err.log", text),
            parse_log("db", "stderr", "db.err.log", other),
        ],
    )
    block = page[page.index('id="fault-1"') : page.index('id="fault-2"')]

    assert "too early" not in block and "too late" not in block
    assert "before the fault" in block and "after the recovery" in block
    assert re.search(r'<span class="inside">[^\n]*during the outage', block)
    assert "Traceback" not in block  # it follows "too late"
    assert "db saw api go away" in block
    assert block.index("api.err.log") < block.index("db.err.log")


def test_a_log_without_timestamps_shows_its_tail_and_says_so(failed_run: RunResult) -> None:
    """Lines that cannot be placed in time: the last 20, and a note saying what they are."""
    journal = journal_of(failed_run)
    text = "".join(f"line {n}\n" for n in range(100))

    page = render_html(journal, [parse_log("api", "stdout", "api.out.log", text)])
    block = page[page.index('id="fault-1"') : page.index('id="fault-2"')]

    assert "carry no timestamps" in block
    assert "line 99" in block and "line 80" in block and "line 79" not in block
    assert "80 earlier lines" in block


def test_the_size_stays_sane_with_a_huge_log(failed_run: RunResult) -> None:
    """20 000 lines around a fault: the excerpt keeps a bounded number of them."""
    journal = journal_of(failed_run)
    api = failed_run.recoveries[0]
    text = "".join(
        f"{stamp(journal, api.injected_at_ms + n * 0.01)} line {n} {'x' * 100}\n"
        for n in range(20_000)
    )

    page = render_html(journal, [parse_log("api", "stdout", "api.out.log", text)])

    assert len(page.encode()) < 300_000
    assert "later lines" in page


def test_no_audit_check_says_no_audit_correlator(failed_run: RunResult) -> None:
    """Without an audit check the section says there was no correlator."""
    page = render_html(failed_run)

    assert "No audit correlator configured" in page


def an_audit_check(index: int, name: str, status: str, detail: str) -> dict[str, Any]:
    """An audit check's result as the engine records it: the correlator's answer as its value."""
    outage = {
        "service": "trading-system-engine",
        "dependency": "exchange",
        "started_at_run_ms": 12.5,
        "ended_at_run_ms": 463.0,
        "duration_ms": 450.5,
    }
    return {
        "index": index,
        "name": name,
        "kind": "audit",
        "status": status,
        "detail": detail,
        "value": {
            "correlation": {
                "faults": [{"target": "exchange-<OKX>", "observations": [{"outage": outage}]}],
                "outages": [outage],
                "orders": {"sent": 120, "acknowledged": 118, "lost": 2},
                "service_starts": [
                    {"service": "exchange-<OKX>", "at_run_ms": 5},
                    {"service": "trading-system-engine", "at_run_ms": 9},
                ],
            },
            "criteria": [{"criterion": "orders_lost", "ok": False}],
        },
    }


def test_audit_checks_show_the_correlators_answer(failed_run: RunResult) -> None:
    """The audit checks in a table, the last answer as nested tables, earlier ones folded."""
    journal = journal_of(failed_run)
    journal["checks"] += [
        an_audit_check(3, "faults observed", "passed", "observed by trading-system-engine"),
        an_audit_check(4, "no order lost", "failed", "2 orders lost <b>"),
    ]
    journal["events"].append(
        {"seq": 999, "at_ms": 10.0, "kind": "audit.emitted", "data": {"event": "fault.injected"}}
    )

    page = render_html(journal)
    audit = page[page.index('id="audit"') : page.index('id="undo"')]

    assert "No audit correlator configured" not in audit
    assert "faults observed" in audit and "2 orders lost &lt;b&gt;" in audit
    assert "answer (check 4)" in audit
    assert "<th>acknowledged</th><td>118</td>" in audit
    assert "<tr><th>service</th><th>at_run_ms</th></tr>" in audit  # flat records: columns
    assert "<th>target</th><td>exchange-&lt;OKX&gt;</td>" in audit  # nested ones: stacked
    assert "data of check 3: faults observed" in audit
    assert "audit.emitted" in audit


def test_outages_the_services_reported_get_a_band_on_their_lane(failed_run: RunResult) -> None:
    """An outage in the audit data gets a lane for its service and a labelled band."""
    journal = journal_of(failed_run)
    journal["checks"].append(an_audit_check(3, "outage short", "passed", "450 ms"))

    page = render_html(journal)
    svg = page[page.index("<svg") : page.index("</svg>")]

    assert ">trading-system-engine</text>" in svg
    assert 1 == svg.count('class="outage-window"')
    assert "outage of exchange · 450.5 ms" in svg


def test_load_errors_per_bucket_are_drawn_when_the_journal_has_them(
    failed_run: RunResult,
) -> None:
    """A load.series event draws a bar per bucket; failed requests in red."""
    journal = journal_of(failed_run)
    [started] = [e for e in journal["events"] if e["kind"] == "load.started"]
    journal["events"].append(
        {
            "seq": 1000,
            "at_ms": started["at_ms"] + 1,
            "kind": "load.series",
            "data": {
                "step": started["data"]["step"],
                "start_ms": started["at_ms"],
                "bucket_ms": 1.0,
                "sent": [10, 10, 10],
                "errors": [0, 7, 0],
            },
        }
    )

    page = render_html(journal)

    assert 1 == page.count('class="load-errors"')
    assert 'data-errors="7"' in page
    assert "no per-request load series" not in page


def test_rendering_a_result_or_its_stored_journal_is_the_same(failed_run: RunResult) -> None:
    """A report rendered later from journal.json equals the one rendered after the run."""
    journal = journal_of(failed_run)

    assert render_html(failed_run) == render_html(journal)


async def test_every_run_writes_report_html_beside_the_journal(tmp_path: Path) -> None:
    """write_run_reports adds report.html, built from journal.json and logs/."""
    result = await a_run(tmp_path)
    logs = result.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "api.out.log").write_text(f"{HOSTILE_LINE}\n", encoding="utf-8")

    paths = write_run_reports(result)

    assert result.run_dir / HTML_FILE == paths[-1]
    page = paths[-1].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(" in page
    assert page == render_html(result, read_service_logs(logs))
    assert paths[-1] == write_html_report(paths[0])


async def test_a_passing_run_says_so(tmp_path: Path) -> None:
    """A passing run: PASSED, and why."""
    result = await a_run(
        tmp_path,
        """
        steps:
          - restart: api
        checks:
          - recovery_time: {service: api, max: 5s}
        """,
    )

    page = render_html(result)

    assert ">PASSED<" in page and "every step and check passed" in page


def test_an_empty_or_foreign_journal_still_renders() -> None:
    """A journal from another version (missing or odd fields) gives a page, not a traceback."""
    for journal in ({}, {"steps": "nonsense", "events": [{"kind": 3}], "recoveries": [{}]}):
        page = render_html(journal)
        assert page.startswith("<!DOCTYPE html>") and "<svg" in page


@given(st.floats(min_value=0.001, max_value=1e9))
def test_time_axis_ticks_are_round_and_few(span: float) -> None:
    """A spacing of 1, 2 or 5 times a power of ten, giving 3 to 8 intervals."""
    step = nice_step(span)
    mantissa = step / 10 ** math.floor(math.log10(step))

    assert round(mantissa, 6) in (1.0, 2.0, 5.0, 10.0)
    assert 3 <= span / step <= 8.0001


class _TagBalance(HTMLParser):
    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.mismatched: list[tuple[str, tuple[int, int]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.mismatched.append((tag, self.getpos()))


def test_every_tag_is_closed_even_with_hostile_content(failed_run: RunResult) -> None:
    """Markup in names and logs cannot unbalance the page (and break the layout below it)."""
    journal = journal_of(failed_run)
    log = parse_log("api", "stdout", "api.out.log", f"{HOSTILE_LINE}\n</td></tr></table>\n")
    parser = _TagBalance()

    parser.feed(render_html(journal, [log]))

    assert ([], []) == (parser.mismatched, parser.open)


def test_network_faults_are_shown_with_what_they_did(tmp_path: Path) -> None:
    """A network fault has no recovery to time: it is listed apart, with its effect, and
    counted, instead of the report saying no fault was injected."""
    set_event = {
        "seq": 5,
        "at_ms": 2000.0,
        "kind": "network.fault_set",
        "data": {
            "step": "4",
            "service": "exchange-link",
            "fault_id": "run-1-step4-exchange-link",
            "fault": {"kind": "partition", "direction": "both"},
        },
    }
    cleared = {
        "seq": 9,
        "at_ms": 5040.0,
        "kind": "network.fault_cleared",
        "data": {
            "service": "exchange-link",
            "fault_id": "run-1-step4-exchange-link",
            "step": "4",
            "detail": "network fault run-1-step4-exchange-link cleared; "
            "it acted on 257 connections",
        },
    }
    journal = {
        "run_id": "run-1",
        "outcome": "passed",
        "steps": [{"step_id": "4", "name": "cut <the> engine", "kind": "partition"}],
        "events": [set_event, cleared],
    }

    page = render_html(journal)
    section = page[page.index('id="network-faults"') :]
    section = section[: section.index("</section>")]

    assert "faults: 1 (1 on the network)" in page
    assert "checks: none ran" in page  # not "0 of 0 passed"
    assert "No fault was injected" not in page
    assert "partition: direction both" in section
    assert "4 cut &lt;the&gt; engine" in section
    assert "2000.0 ms" in section and "5040.0 ms" in section
    assert "acted on 257 connections" in section
