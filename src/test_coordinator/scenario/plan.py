"""The resolved timeline of a scenario, as text: what ``run`` would do, touching nothing."""

from __future__ import annotations

import shlex

from test_coordinator.faults import ACTIONS, FAULT_KINDS
from test_coordinator.scenario.checks import describe_check_text
from test_coordinator.scenario.durations import format_duration
from test_coordinator.scenario.loader import BUILTIN_VARIABLES, LoadedScenario
from test_coordinator.scenario.probes import describe_probe
from test_coordinator.scenario.timeline import choose_targets, plan_steps, step_names

NETWORK_KINDS = frozenset({"network", "partition"})


def render_plan(loaded: LoadedScenario, seed: int | None) -> str:
    model = loaded.model
    lines = [f"{loaded.name}  ({loaded.path}, format version {model.version})"]
    if model.description:
        lines.append(f"  {model.description}")
    planned = plan_steps(model.steps)
    has_random = any(
        getattr(getattr(item.step, item.kind, None), "random", False) for item in planned
    )
    shown_seed = seed if seed is not None else 0
    seed_text = f"seed {seed}" if seed is not None else "no --seed: a run draws one (shown as 0)"
    lines.append(f"run timeout {format_duration(model.timeout)}; {seed_text}")

    variables = [
        f"{name}={loaded.values[name]!r} ({loaded.origins.get(name, 'default')})"
        for name in sorted(loaded.declared_vars)
    ]
    if variables:
        lines += ["", "Variables:", *(f"  {text}" for text in variables)]
    if loaded.ports:
        ports = ", ".join(f"{name}={port}" for name, port in loaded.ports.items())
        lines += ["", f"Ports (placeholders; each run allocates free ones): {ports}"]

    lines += ["", "Services (the blast radius: nothing else is touched):"]
    for name, service in model.services.items():
        if service.process is not None:
            run = service.process
            how = "process: " + shlex.join(run.argv)
            if run.cwd:
                how += f"  (in {run.cwd})"
        elif service.docker is not None:
            docker = service.docker
            how = (
                f"docker: existing container {docker.container} (restored, never removed)"
                if docker.container is not None
                else f"docker: a container of image {docker.image}, created and removed by the run"
            )
        elif service.proxy is not None:
            proxy = service.proxy
            how = (
                f"proxy: existing, controlled through {proxy.control} (never started or stopped)"
                if proxy.control is not None
                else f"proxy: listens on {proxy.host}:{proxy.listen}, forwards to {proxy.upstream}"
            )
            if proxy.to is not None:
                how += f" ({proxy.to}"
                how += f", for {', '.join(proxy.clients)})" if proxy.clients else ")"
        else:
            how = "observed only (no process:, docker: or proxy:)"
        lines.append(f"  {name}: {how}")
        lines.append(f"    health: {describe_probe(service.health)}")
        if service.metrics_url:
            lines.append(f"    metrics: {service.metrics_url}")
        if service.depends_on:
            lines.append(f"    starts after: {', '.join(service.depends_on)} (healthy)")

    if model.audit is not None:
        lines += [
            "",
            f"Audit correlator: {model.audit.url} (faults reported; run id as correlation id)",
        ]
        for name, observers in model.audit.affects.items():
            lines.append(
                f"  a fault on {name} must be observed by: {', '.join(observers) or 'nobody'}"
            )

    started = [n for n, s in model.services.items() if s.managed and s.autostart]
    lines += ["", "Timeline:"]
    lines.append(f"  setup    start {', '.join(started) or 'nothing'}; wait until each is healthy")
    for condition in model.steady_state:
        lines.append(f"  steady   {condition.describe()}  (before the first step)")

    chosen = choose_targets(planned, shown_seed)
    names = step_names(planned, chosen)
    for item in planned:
        indent = "  " * item.depth
        spec = getattr(item.step, item.kind, None)
        note = ""
        if getattr(spec, "random", False):
            picked = ", ".join(chosen.get(item.step_id, ()))
            note = f"  [random from {', '.join(spec.services)}: {picked}]"  # type: ignore[union-attr]
        if item.kind in NETWORK_KINDS:
            note += "  [network fault: heal recorded first; what it did is reported]"
        elif item.kind in FAULT_KINDS:
            note += f"  [fault: undo ({ACTIONS[item.kind].undo}) recorded first; recovery measured]"
            if model.audit is not None:
                note += "  [reported to the audit correlator]"
        lines.append(
            f"  {indent}{item.step_id:<6} {names[item.step_id]}"
            f"  (timeout {format_duration(item.timeout_s)}){note}"
        )
    for condition in model.steady_state:
        lines.append(f"  steady   {condition.describe()}  (after the last step)")
    for index, check in enumerate(model.checks, start=1):
        lines.append(f"  check {index}  {describe_check_text(check)}")
    lines.append(
        "  undo     every fault still in effect, newest first, each verified; then remove "
        "what the run created"
    )
    hidden = [name for name in BUILTIN_VARIABLES if name in loaded.values]
    if hidden:
        lines += ["", "Built-in variables: " + ", ".join(f"${{{name}}}" for name in hidden)]
    if has_random and seed is None:
        lines.append("Random targets above follow seed 0; pass --seed to see a given run's.")
    return "\n".join(lines)
