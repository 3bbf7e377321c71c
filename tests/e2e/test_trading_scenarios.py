"""The trading scenarios and ``demo`` end to end: the sample ecosystem as real processes,
verified through the audit correlator, and nothing left running afterwards."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from e2e.cli_harness import REPO, Cli
from test_coordinator.targets.process import procfs

pytestmark = pytest.mark.slow

SCENARIOS = REPO / "scenarios"
FLAGSHIP = SCENARIOS / "exchange-restart-during-trading.yaml"
RUN_TIMEOUT_S = 90.0


def processes_mentioning(text: str) -> list[int]:
    """Live (not zombie) processes whose environment or command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            stat = procfs.read_stat(int(entry.name))
            if stat is not None and not stat.is_zombie:
                found.append(int(entry.name))
    return found


def journal(cli: Cli) -> dict[str, Any]:
    [path] = list((cli.workdir / "reports").glob("*/journal.json"))
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def audit_values(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [c["value"] for c in data["checks"] if c["kind"] == "audit" and c["value"]]


def assert_orders_reconcile(data: dict[str, Any]) -> dict[str, Any]:
    """Every audit check reports the same orders at the same cut-off, their identities hold,
    and the engine's counters read at the cut-off equal its share of them. The orders."""
    values = audit_values(data)
    cut_offs = {json.dumps(v["cut_off"], sort_keys=True) for v in values}
    assert 1 == len(cut_offs), f"the audit checks disagree on the cut-off: {cut_offs}"
    cut_off = values[0]["cut_off"]
    at_cut_off = ("cut_off_ms", "sent", "acknowledged", "failed", "in_flight", "unanswered")
    at_cut_off += ("received", "received_unacknowledged")
    numbers = {json.dumps({k: v["correlation"]["orders"][k] for k in at_cut_off}) for v in values}
    assert 1 == len(numbers), f"the audit checks report different order numbers: {numbers}"
    orders: dict[str, Any] = values[-1]["correlation"]["orders"]
    assert cut_off["at_ms_epoch"] == orders["cut_off_ms"]
    assert orders["sent"] == (
        orders["acknowledged"] + orders["failed"] + orders["in_flight"] + orders["unanswered"]
    )
    failing = {d["kind"]: d for d in orders["differences"] if d["kind"] != "received_not_sent"}
    assert {} == failing
    assert orders["received"] == orders["acknowledged"] + orders["received_unacknowledged"]
    assert cut_off["counters_still"]
    for counted in cut_off["counters"]:  # the scenarios with orders_reported
        [share] = [s for s in orders["senders"] if s["source"] == counted["source"]]
        assert (share["sent"], share["acknowledged"], share["failed"]) == (
            counted["sent"]["value"],
            counted["acknowledged"]["value"],
            counted["failed"]["value"],
        )
    [taken] = [e["data"] for e in data["events"] if e["kind"] == "audit.cut_off"]
    assert cut_off["at_ms_epoch"] == taken["at_ms_epoch"]
    return orders


def metric_values(data: dict[str, Any], name: str) -> list[float]:
    return [c["value"] for c in data["checks"] if c["kind"] == "metric" and name in c["detail"]]


def assert_nothing_left(cli: Cli) -> None:
    leftovers = processes_mentioning(str(cli.workdir / "reports"))
    assert [] == leftovers, f"processes left running: {leftovers}"


@pytest.mark.parametrize(
    "name",
    [
        "trading-engine-kill",
        "exchange-pause",
        "audit-correlator-restart",
        "exchange-partition-during-trading",
    ],
)
def test_each_trading_scenario_passes(cli: Cli, name: str) -> None:
    done = cli.run("run", str(SCENARIOS / f"{name}.yaml"), timeout_s=RUN_TIMEOUT_S)

    assert 0 == done.returncode, done.stdout + done.stderr
    assert f"PASSED {name}" in done.stdout
    data = journal(cli)
    assert all(c["status"] == "passed" for c in data["checks"])
    summaries = [v["correlation"] for v in audit_values(data)]
    assert summaries, "the audit checks carry the correlation"
    assert all(s["correlation_id"] == data["run_id"] for s in summaries)
    [reporter] = [e["data"] for e in data["events"] if e["kind"] == "audit.reporter"]
    assert reporter["emitted"] == reporter["delivered"] > 0
    assert 0 == reporter["dropped"] == reporter["pending"]
    orders = assert_orders_reconcile(data)
    if name == "trading-engine-kill":
        # the metric counts the new process's orders: its share since its start, not the run's
        [share] = orders["senders"]
        starts = audit_values(data)[0]["correlation"]["service_starts"]
        engine_starts = [s["at_ms_epoch"] for s in starts if s["service"] == share["source"]]
        assert 2 == len(engine_starts) and share["since_ms"] == engine_starts[-1]
        assert [float(share["acknowledged"])] == metric_values(data, "orders_acknowledged_total")
        assert share["sent"] < orders["sent"]
    if name == "exchange-partition-during-trading":
        [cut] = [e["data"] for e in data["events"] if e["kind"] == "network.fault_cleared"]
        assert cut["service"] == "exchange-link" and cut["stats"]["connections"] > 0
        steps = {step["name"]: step for step in data["steps"]}
        assert steps["the engine notices the exchange is gone"]["status"] == "passed"
    assert_nothing_left(cli)


def test_flagship_passes_showing_the_outage_and_no_order_lost(cli: Cli) -> None:
    done = cli.run("run", str(FLAGSHIP), timeout_s=RUN_TIMEOUT_S)

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "PASSED exchange-restart-during-trading" in done.stdout
    data = journal(cli)
    assert all(c["status"] == "passed" for c in data["checks"])
    [summary, *_] = [v["correlation"] for v in audit_values(data)]
    [fault] = summary["faults"]
    assert ("exchange-OKX", "restart", True) == (
        fault["target"],
        fault["fault"],
        fault["observed_by_all"],
    )
    [outage] = [o for o in summary["outages"] if o["service"] == "trading-system-engine"]
    assert 0 < outage["duration_ms"] < 5000
    assert summary["orders"]["sent"] > 40
    assert 0 == summary["orders"]["lost"]
    assert_orders_reconcile(data)
    assert_nothing_left(cli)


def test_flagship_fails_when_the_engine_does_not_retry(cli: Cli) -> None:
    done = cli.run("run", str(FLAGSHIP), "--var", "order_retry=false", timeout_s=RUN_TIMEOUT_S)

    assert 1 == done.returncode, done.stdout + done.stderr
    verdict = next(line for line in done.stdout.splitlines() if line.startswith("FAILED"))
    assert "(no order lost) failed" in verdict
    assert re.search(r"\d+ orders lost \(at most 0 allowed\)", journal(cli)["reason"])
    assert_nothing_left(cli)


def test_flagship_fails_when_the_correlator_drops_events(cli: Cli) -> None:
    done = cli.run("run", str(FLAGSHIP), "--var", "drop_audit_events=true", timeout_s=RUN_TIMEOUT_S)

    assert 1 == done.returncode, done.stdout + done.stderr
    reason = journal(cli)["reason"]
    assert "faults not observed: restart of exchange-OKX" in reason
    assert "the audit correlator has no record of it" in reason
    assert_nothing_left(cli)


def test_demo_passes_prints_the_report_and_leaves_nothing_behind(cli: Cli) -> None:
    done = cli.run("demo", "--reports-dir", "reports", timeout_s=RUN_TIMEOUT_S)

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "demo: PASSED" in done.stdout
    assert "PASSED exchange-restart-during-trading" in done.stdout
    data = journal(cli)
    assert "passed" == data["outcome"]
    html = [line for line in done.stdout.splitlines() if line.startswith("demo: HTML report:")]
    for line in html:
        assert (cli.workdir / line.split(": ", 2)[2].strip()).is_file()
    assert_nothing_left(cli)


def test_demo_order_numbers_are_one_set_across_the_report_and_the_metric(cli: Cli) -> None:
    """The engine did not restart: its counters read at the cut-off are the run's numbers,
    and the metric check, read later, reads them again (trading closed before the checks)."""
    done = cli.run("demo", "--reports-dir", "reports", timeout_s=RUN_TIMEOUT_S)

    assert 0 == done.returncode, done.stdout + done.stderr
    data = journal(cli)
    orders = assert_orders_reconcile(data)
    [counted] = audit_values(data)[0]["cut_off"]["counters"]
    sent, acknowledged = counted["sent"]["value"], counted["acknowledged"]["value"]
    assert (sent, acknowledged) == (orders["sent"], orders["acknowledged"])
    assert [acknowledged] == metric_values(data, "orders_acknowledged_total")
    assert (0, 0, 0) == (orders["in_flight"], orders["pending"], orders["lost"])
    line = (
        f"{orders['sent']} sent = {orders['acknowledged']} acknowledged + {orders['failed']} "
        f"failed + 0 in flight; {orders['received']} received by the exchange"
    )
    [no_order_lost] = [c for c in data["checks"] if c["name"] == "no order lost"]
    assert line in no_order_lost["detail"]
    assert_nothing_left(cli)


def test_demo_exit_code_follows_run(cli: Cli) -> None:
    done = cli.run("demo", "--var", "order_retry=false", timeout_s=RUN_TIMEOUT_S)

    assert 1 == done.returncode, done.stdout + done.stderr
    assert "demo: FAILED" in done.stdout and "orders lost" in done.stdout
    assert_nothing_left(cli)
