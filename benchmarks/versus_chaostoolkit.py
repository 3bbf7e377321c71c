"""test-coordinator against Chaos Toolkit: CLI start-up, validate, and runs of HTTP probes.

Chaos Toolkit (chaostoolkit 1.19.*, with the chaostoolkit-lib it pins) is installed
into its own venv under /tmp (reused when present). One HTTP/1.1 server, Python's
http.server writing headers and body in two writes, answers every probe. Both tools
get equivalent files: a steady state of one HTTP probe (checked before and after,
as both tools do by default), then N HTTP probe steps.

Each case runs as a whole process, interleaved A/B, and reports the median wall time
of ``--reps`` runs and, for the runs, the peak RSS (wait4's ru_maxrss: the largest
of the process and its children). The per-probe-step cost is
(run of 50 - run of 1) / 49, from the medians. The runs of 50 probes are made
against two servers: Python's http.server (head and body in two writes) and
scenarios/examples/tiny_server.py (one write).

Both tools run as users run them: with their byte code cached (the environment's
PYTHONDONTWRITEBYTECODE, which some CI images set, is dropped for both).

    .venv/bin/python benchmarks/versus_chaostoolkit.py [--reps 11] [--steps 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CTK_VENV = Path(tempfile.gettempdir()) / "ctk-venv"
TINY_SERVER = Path(__file__).resolve().parents[1] / "scenarios" / "examples" / "tiny_server.py"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CTK_REQUIREMENT = "chaostoolkit==1.19.*"
TC = Path(sys.executable).with_name("test-coordinator")

# Python's http.server with HTTP/1.1 and its default unbuffered wfile: the status
# line and headers go out in one write, the body in a second.
SERVER = r"""
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def ensure_chaostoolkit() -> Path:
    chaos = CTK_VENV / "bin" / "chaos"
    if chaos.exists():
        return chaos
    print(f"installing {CTK_REQUIREMENT} into {CTK_VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(CTK_VENV)], check=True)
    subprocess.run(
        [str(CTK_VENV / "bin" / "pip"), "install", "-q", CTK_REQUIREMENT],
        check=True,
    )
    return chaos


def ctk_experiment(url: str, steps: int) -> dict[str, object]:
    def probe(name: str) -> dict[str, object]:
        return {
            "type": "probe",
            "name": name,
            "tolerance": 200,
            "provider": {"type": "http", "url": url, "timeout": 1},
        }

    return {
        "version": "1.0.0",
        "title": f"{steps} HTTP probes",
        "description": "A steady state of one HTTP probe, then HTTP probe steps.",
        "steady-state-hypothesis": {"title": "server answers", "probes": [probe("health")]},
        "method": [probe(f"probe-{i}") for i in range(1, steps + 1)],
        "rollbacks": [],
    }


def tc_scenario(url: str, steps: int) -> str:
    lines = [
        "version: 1",
        f"name: http-probes-{steps}",
        "description: A steady state of one HTTP probe, then HTTP probe steps.",
        "timeout: 1m",
        "services:",  # required; the server runs outside the scenario
        f'  web: {{health: {{http: {{url: "{url}", timeout: 1s}}}}}}',
        "steady_state:",
        f'  - http: {{url: "{url}", timeout: 1s}}',
        "steps:",
    ]
    for i in range(1, steps + 1):
        lines += [f"  - name: probe-{i}", f'    probe: {{http: {{url: "{url}", timeout: 1s}}}}']
    return "\n".join(lines) + "\n"


@dataclass
class Sample:
    wall_ms: float
    maxrss_mb: float


def run_once(argv: Sequence[str], cwd: Path) -> Sample:
    with open(cwd / "last-output.txt", "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_ms = (time.perf_counter() - started) * 1000.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        output = (cwd / "last-output.txt").read_text(errors="replace")
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{output[-2000:]}")
    return Sample(wall_ms, usage.ru_maxrss / 1024.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    chaos = ensure_chaostoolkit()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    once = subprocess.Popen(
        [sys.executable, str(TINY_SERVER), "--port", "0", "--name", "once"],
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        assert server.stdout is not None and once.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/health"
        once_url = f"http://127.0.0.1:{int(once.stdout.readline().split()[-1])}/health"
        with tempfile.TemporaryDirectory(prefix="tc-vs-ctk-") as tmp:
            work = Path(tmp)
            for steps in (1, args.steps):
                experiment = ctk_experiment(url, steps)
                (work / f"exp-{steps}.json").write_text(json.dumps(experiment, indent=2))
                (work / f"scenario-{steps}.yaml").write_text(tc_scenario(url, steps))
            experiment = ctk_experiment(once_url, args.steps)
            (work / "exp-once.json").write_text(json.dumps(experiment, indent=2))
            (work / "scenario-once.yaml").write_text(tc_scenario(once_url, args.steps))
            ctk = [str(chaos), "--no-version-check", "--settings", str(work / "ctk-settings.yaml")]
            tc = [str(TC)]
            reports = ["--reports-dir", str(work / "reports")]
            journal = ["--journal-path", str(work / "journal.json")]
            n = args.steps
            cases: dict[str, tuple[list[str], list[str]]] = {
                "--help": ([*ctk, "--help"], [*tc, "--help"]),
                "validate": (
                    [*ctk, "validate", str(work / "exp-1.json")],
                    [*tc, "validate", str(work / "scenario-1.yaml")],
                ),
                "run, 1 probe": (
                    [*ctk, "run", *journal, str(work / "exp-1.json")],
                    [*tc, "run", *reports, str(work / "scenario-1.yaml")],
                ),
                f"run, {n} probes": (
                    [*ctk, "run", *journal, str(work / f"exp-{n}.json")],
                    [*tc, "run", *reports, str(work / f"scenario-{n}.yaml")],
                ),
                f"run, {n} probes, one write": (
                    [*ctk, "run", *journal, str(work / "exp-once.json")],
                    [*tc, "run", *reports, str(work / "scenario-once.yaml")],
                ),
            }
            samples: dict[tuple[str, str], list[Sample]] = {}
            for argv_ctk, argv_tc in cases.values():  # warm the page cache
                run_once(argv_ctk, work)
                run_once(argv_tc, work)
            for rep in range(args.reps):
                for case, (argv_ctk, argv_tc) in cases.items():
                    order = [("ctk", argv_ctk), ("tc", argv_tc)]
                    if rep % 2:
                        order.reverse()
                    for tool, argv in order:
                        samples.setdefault((case, tool), []).append(run_once(argv, work))
    finally:
        for process in (server, once):
            process.terminate()
            process.wait()

    def wall(case: str, tool: str) -> float:
        return statistics.median(s.wall_ms for s in samples[(case, tool)])

    def rss(case: str, tool: str) -> float:
        return statistics.median(s.maxrss_mb for s in samples[(case, tool)])

    rows: list[tuple[str, float, float, str]] = []
    for case in cases:
        rows.append((f"{case} (ms)", wall(case, "ctk"), wall(case, "tc"), "ms"))
    for case in ("run, 1 probe", f"run, {n} probes"):
        rows.append((f"{case} peak RSS (MB)", rss(case, "ctk"), rss(case, "tc"), "MB"))
    for case, label in (
        (f"run, {n} probes", "http.server"),
        (f"run, {n} probes, one write", "one write"),
    ):
        per_step = {
            tool: (wall(case, tool) - wall("run, 1 probe", tool)) / (n - 1)
            for tool in ("ctk", "tc")
        }
        rows.append((f"per probe step, {label} (ms)", per_step["ctk"], per_step["tc"], "ms"))

    print(f"medians of {args.reps}, interleaved A/B; server: http.server (two writes) unless noted")
    print(f"{'case':32s} {'chaostoolkit':>13s} {'test-coord.':>12s} {'tc/ctk':>8s}")
    for label, ctk_value, tc_value, _ in rows:
        ratio = tc_value / ctk_value if ctk_value else float("nan")
        print(f"{label:32s} {ctk_value:13.2f} {tc_value:12.2f} {ratio:8.2f}")


if __name__ == "__main__":
    main()
