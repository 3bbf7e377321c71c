"""Rules that span the document: the blast radius, names that must exist, capture order."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from test_coordinator.scenario.checks import (
    AuditCheck,
    LoadCheck,
    LogCheck,
    MetricCheck,
    RecoveryTimeCheck,
    check_kind,
)
from test_coordinator.scenario.model import Scenario
from test_coordinator.scenario.network import linking_proxies
from test_coordinator.scenario.probes import Condition
from test_coordinator.scenario.problems import ScenarioProblem
from test_coordinator.scenario.source import Path, SourceTree
from test_coordinator.scenario.steps import (
    FAULT_KINDS,
    RESTORING_KINDS,
    TARGETED_KINDS,
    AlwaysStep,
    BackgroundStep,
    ExpectStep,
    ParallelStep,
    PartitionSpec,
    PartitionStep,
    ProbeStep,
    StepBase,
    WaitStep,
    step_kind,
    targets_of,
)
from test_coordinator.scenario.variables import references

PROXY_KINDS = ("network", "heal")


def walk_steps(
    steps: tuple[StepBase, ...], prefix: Path = ("steps",)
) -> Iterator[tuple[Path, StepBase]]:
    """Every step with its path in the file, parallel children after their group."""
    for index, step in enumerate(steps):
        path = (*prefix, index)
        yield path, step
        if isinstance(step, ParallelStep):
            yield from walk_steps(step.parallel, (*path, "parallel"))


def semantic_problems(
    scenario: Scenario, tree: SourceTree, captures: frozenset[str]
) -> list[ScenarioProblem]:
    checker = _Checker(scenario, tree, captures)
    checker.run()
    return checker.problems


class _Checker:
    def __init__(self, scenario: Scenario, tree: SourceTree, captures: frozenset[str]) -> None:
        self.scenario = scenario
        self.tree = tree
        self.captures = captures
        self.problems: list[ScenarioProblem] = []
        self.services = sorted(scenario.services)
        self.step_names: dict[str, StepBase] = {}

    def report(self, path: Path, message: str) -> None:
        self.problems.append(self.tree.problem(path, message))

    def run(self) -> None:
        self._services_use_no_captures()
        self._start_order()
        for index, condition in enumerate(self.scenario.steady_state):
            self._condition(("steady_state", index), condition)
            self._no_captures(("steady_state", index), "steady state is checked before any step")
        self._steps()
        self._audit()
        self._checks()

    def _service(self, path: Path, name: str, *, managed: bool = False) -> None:
        service = self.scenario.services.get(name)
        if service is None:
            close = difflib.get_close_matches(name, self.services, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ";"
            self.report(
                path,
                f"service '{name}' is not in the inventory{hint} allowed (services:): "
                + ", ".join(self.services),
            )
        elif managed and not service.managed:
            self.report(
                path,
                f"service '{name}' is only observed (no process: or docker:): steps may probe "
                "it but not start, stop or signal it; allowed: services with process: or docker:",
            )

    def _proxy(self, path: Path, name: str, kind: str) -> None:
        service = self.scenario.services.get(name)
        containers_heal = kind == "heal" and service is not None and service.docker is not None
        if (
            service is not None
            and service.managed
            and service.proxy is None
            and not containers_heal
        ):
            proxies = [n for n, s in self.scenario.services.items() if s.proxy is not None]
            self.report(
                path,
                f"'{kind}' acts on proxy services; '{name}' is not one; allowed: "
                + (", ".join(proxies) or "none declared (a service with proxy:)"),
            )

    def _not_existing_proxy(self, path: Path, name: str, kind: str) -> None:
        service = self.scenario.services.get(name)
        if service is not None and service.proxy is not None and service.proxy.existing:
            self.report(
                path,
                f"'{kind}' cannot act on '{name}': it is an existing proxy (control:), started "
                "outside the run; allowed on it: network, partition, heal",
            )

    def _partition(self, path: Path, spec: PartitionSpec) -> None:
        for side, names in (("between", spec.between), ("and", spec.and_)):
            for name in names:
                self._service((*path, side), name)
        services = self.scenario.services
        containers = [n for n in spec.between if n in services and services[n].docker]
        if not linking_proxies(services, spec.between, spec.and_) and not containers:
            self.report(
                path,
                "no proxy service links the two sides, and no container is on the between: "
                "side; a proxy links them when its to: names a service of one side and its "
                "clients: (or anyone) include one of the other; a container is disconnected "
                "from the networks it shares with the other side",
            )

    def _condition(self, path: Path, condition: Condition) -> None:
        for name in condition.healthy or ():
            self._service((*path, "healthy"), name)

    def _start_order(self) -> None:
        started = {
            name
            for name, service in self.scenario.services.items()
            if service.managed and service.autostart
        }
        for name, service in self.scenario.services.items():
            path: Path = ("services", name, "depends_on")
            for dependency in service.depends_on or ():
                self._service(path, dependency)
                if dependency == name:
                    self.report(path, f"service '{name}' cannot depend on itself")
                elif dependency in self.scenario.services and dependency not in started:
                    self.report(
                        path,
                        f"'{dependency}' is not started by setup, so '{name}' would never start; "
                        "allowed: services with process: or docker: and autostart: true",
                    )
        cycle = _dependency_cycle(
            {n: tuple(s.depends_on or ()) for n, s in self.scenario.services.items()}
        )
        if cycle:
            self.report(
                ("services", cycle[0], "depends_on"),
                "services depend on each other in a cycle: " + " -> ".join(cycle),
            )

    def _services_use_no_captures(self) -> None:
        for name in self.scenario.services:
            self._no_captures(("services", name), "services start before any step")

    def _no_captures(self, path: Path, why: str, available: frozenset[str] = frozenset()) -> None:
        for ref_path, name in self._refs(path):
            if name in self.captures and name not in available:
                self.report(ref_path, f"'${{{name}}}' is captured by a step, but {why}")

    def _refs(self, path: Path) -> Iterator[tuple[Path, str]]:
        node: Any = self.tree.data
        for part in path:
            node = node[part]
        yield from _refs_in(node, path)

    def _steps(self) -> None:
        captured: set[str] = set()
        for index, step in enumerate(self.scenario.steps):
            path: Path = ("steps", index)
            self._no_captures(
                path, "it is used before the step that captures it", frozenset(captured)
            )
            captured |= self._step(path, step)

    def _step(self, path: Path, step: StepBase) -> set[str]:
        kind = step_kind(step)
        if step.name is not None:
            if step.name in self.step_names:
                self.report((*path, "name"), f"step name '{step.name}' is used twice")
            self.step_names[step.name] = step
        targets = targets_of(step)
        if targets is not None:
            for name in targets.services:
                self._service((*path, kind), name, managed=True)
                if kind in PROXY_KINDS:
                    self._proxy((*path, kind), name, kind)
                else:
                    self._not_existing_proxy((*path, kind), name, kind)
        self._timeouts(path, step)
        captured: set[str] = set()
        if isinstance(step, ExpectStep | ProbeStep):
            condition = step.expect if isinstance(step, ExpectStep) else step.probe
            self._condition((*path, kind), condition)
            if step.capture is not None:
                if condition.healthy is not None:
                    self.report(
                        (*path, "capture"),
                        "'healthy' has no value to capture; "
                        "allowed: a probe (http, tcp, grpc, command)",
                    )
                captured.add(step.capture)
        elif isinstance(step, AlwaysStep):
            self._condition((*path, kind), step.always)
        elif isinstance(step, BackgroundStep) and step.background.always is not None:
            self._condition((*path, kind, "always"), step.background.always)
        elif isinstance(step, PartitionStep):
            self._partition((*path, kind), step.partition)
        elif isinstance(step, ParallelStep):
            for child_index, child in enumerate(step.parallel):
                captured |= self._step((*path, "parallel", child_index), child)
        return captured

    def _timeouts(self, path: Path, step: StepBase) -> None:
        if step.timeout is None:
            return
        inner = None
        if isinstance(step, WaitStep):
            inner = ("wait", step.wait)
        elif isinstance(step, ExpectStep):
            inner = ("within", step.expect.within)
        elif isinstance(step, AlwaysStep):
            inner = ("for", step.always.window)
        if inner is not None and step.timeout < inner[1]:
            self.report(
                (*path, "timeout"),
                f"timeout {step.timeout:g}s is shorter than {inner[0]} {inner[1]:g}s; "
                f"allowed: at least {inner[1]:g}s",
            )

    def _checks(self) -> None:
        loads = [
            step.name
            for _, step in walk_steps(self.scenario.steps)
            if isinstance(step, BackgroundStep) and step.background.load is not None
        ]
        faults: dict[str, list[str | None]] = {}
        restored: set[str] = set()
        for _, step in walk_steps(self.scenario.steps):
            targets = targets_of(step)
            if targets is None:
                continue
            if step_kind(step) in FAULT_KINDS:
                for name in targets.services:
                    faults.setdefault(name, []).append(step.name)
            elif step_kind(step) in RESTORING_KINDS:
                restored.update(targets.services)
        for index, check in enumerate(self.scenario.checks):
            path: Path = ("checks", index, check_kind(check))
            if isinstance(check, RecoveryTimeCheck):
                self._recovery_check(path, check, faults, restored)
            elif isinstance(check, MetricCheck) and check.metric.service is not None:
                self._metrics_service((*path, "service"), check.metric.service)
            elif isinstance(check, AuditCheck):
                self._audit_check(path, check)
            elif isinstance(check, LogCheck):
                self._service((*path, "service"), check.log.service)
                if check.log.after is not None:
                    self._named_step((*path, "after"), check.log.after)
            elif isinstance(check, LoadCheck):
                self._load_check(path, check, loads)

    def _named_step(self, path: Path, name: str) -> None:
        """``name`` must be the ``name`` of a step (a window's ``around``, a log's ``after``)."""
        if name in self.step_names:
            return
        close = difflib.get_close_matches(name, list(self.step_names), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ";"
        self.report(
            path,
            f"no step is named '{name}'{hint} allowed: "
            + (", ".join(self.step_names) or "name the step first"),
        )

    def _metrics_service(self, path: Path, name: str) -> None:
        self._service(path, name)
        service = self.scenario.services.get(name)
        if service is not None and service.metrics_url is None:
            self.report(
                path,
                f"service '{name}' has no metrics_url; allowed: give it one"
                + (", or give the check a url" if path[-2] == "metric" else ""),
            )

    def _audit(self) -> None:
        if self.scenario.audit is None:
            return
        for name in self.scenario.audit.affects:
            self._service(("audit", "affects", name), name)

    def _audit_check(self, path: Path, check: AuditCheck) -> None:
        if self.scenario.audit is None:
            self.report(
                path,
                "an audit check needs an audit correlator; allowed: add audit: {url: ...} "
                "at the top level",
            )
        reported = check.audit.orders_reported
        if reported is not None:
            self._metrics_service((*path, "orders_reported", "service"), reported.service)

    def _recovery_check(
        self,
        path: Path,
        check: RecoveryTimeCheck,
        faults: dict[str, list[str | None]],
        restored: set[str],
    ) -> None:
        spec = check.recovery_time
        if spec.service is not None:
            self._service((*path, "service"), spec.service)
            if spec.service not in self.scenario.services:
                return
        candidates = (
            faults.get(spec.service, [])
            if spec.service
            else [name for names in faults.values() for name in names]
        )
        if not faults or (spec.service is not None and spec.service not in faults):
            self.report(
                (*path, "service") if spec.service else path,
                f"no step injects a fault into '{spec.service or 'any service'}'; allowed: a "
                "service that is stopped, restarted, killed or paused",
            )
        elif spec.step is not None and spec.step not in candidates:
            named = sorted({name for name in candidates if name})
            self.report(
                (*path, "step"),
                f"no fault step is named '{spec.step}'; allowed: "
                + (", ".join(named) or "name the fault step first"),
            )
        elif spec.max_from_restore is not None:
            self._restore_bound((*path, "max_from_restore"), spec.service, spec.step, restored)

    def _restore_bound(
        self, path: Path, service: str | None, step: str | None, restored: set[str]
    ) -> None:
        """A ``max_from_restore`` needs a fault that a later ``resume`` or ``start`` restores."""
        named = self.step_names.get(step) if step is not None else None
        if named is not None and step_kind(named) == "restart":
            self.report(
                path,
                f"step '{step}' is a restart, which restores the service itself: there is no "
                "restore to measure from; allowed: a pause, stop or kill that a resume or "
                "start step restores",
            )
            return
        if service is not None:
            subjects = {service}
        else:
            targets = targets_of(named) if named is not None else None
            subjects = set(targets.services if targets is not None else self.scenario.services)
        if not subjects & restored:
            if service is not None:
                what = f"'{service}'"
            elif named is not None:
                what = " or ".join(f"'{name}'" for name in sorted(subjects))
                what += f" (the target of step '{step}')"
            else:
                what = "any service"
            self.report(
                path,
                f"no step resumes or starts {what}, so no fault has a restore to measure from "
                "(the undo at the end comes after the checks); allowed: a resume or start "
                "step after the fault",
            )

    def _load_check(self, path: Path, check: LoadCheck, loads: list[str | None]) -> None:
        spec = check.load
        if not loads:
            self.report(path, "there is no background load in this scenario")
        elif spec.generator is None and len(loads) > 1:
            self.report(path, "there are several loads; name one with generator:")
        elif spec.generator is not None and spec.generator not in loads:
            named = [name for name in loads if name]
            self.report(
                (*path, "generator"),
                f"no background load step is named '{spec.generator}'; allowed: "
                + (", ".join(named) or "name the load step"),
            )
        if spec.window is not None:
            self._named_step((*path, "window", "around"), spec.window.around)


def _dependency_cycle(graph: dict[str, tuple[str, ...]]) -> list[str]:
    """A cycle in ``graph`` as the names along it (first repeated at the end), or []."""
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str]:
        if name in trail:
            return [*trail[trail.index(name) :], name]
        if name in done or name not in graph:
            return []
        for dependency in graph[name]:
            found = visit(dependency, [*trail, name])
            if found:
                return found
        done.add(name)
        return []

    for name in graph:
        found = visit(name, [])
        if found:
            return found
    return []


def unknown_service_references(tree: SourceTree) -> list[ScenarioProblem]:
    """Steps and checks naming services outside the inventory, read from the raw document.

    Used when the document has structural errors, so that a misspelt service
    is reported in the same pass as a misspelt key.
    """
    data = tree.data if isinstance(tree.data, dict) else {}
    services = data.get("services")
    if not isinstance(services, dict):
        return []
    known = sorted(services)
    problems = []
    for path, name in _raw_service_refs(data):
        if name not in services:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ";"
            problems.append(
                tree.problem(
                    path,
                    f"service '{name}' is not in the inventory{hint} allowed (services:): "
                    + ", ".join(known),
                )
            )
    return problems


def _raw_service_refs(data: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    def names(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, list):
            yield from ((path, item) for item in value if isinstance(item, str))
        elif isinstance(value, dict) and isinstance(value.get("random"), list):
            yield from ((path, item) for item in value["random"] if isinstance(item, str))

    def steps(items: Any, prefix: Path) -> Iterator[tuple[Path, str]]:
        for index, step in enumerate(items if isinstance(items, list) else []):
            if not isinstance(step, dict):
                continue
            path = (*prefix, index)
            for kind in TARGETED_KINDS:
                if kind in step:
                    yield from names(step[kind], (*path, kind))
            for kind in ("expect", "always", "probe"):
                if isinstance(step.get(kind), dict) and "healthy" in step[kind]:
                    yield from names(step[kind]["healthy"], (*path, kind))
            yield from steps(step.get("parallel"), (*path, "parallel"))

    yield from steps(data.get("steps"), ("steps",))
    steady = data.get("steady_state")
    for index, condition in enumerate(steady if isinstance(steady, list) else []):
        if isinstance(condition, dict) and "healthy" in condition:
            yield from names(condition["healthy"], ("steady_state", index, "healthy"))
    checks = data.get("checks")
    for index, check in enumerate(checks if isinstance(checks, list) else []):
        if isinstance(check, dict):
            for kind, spec in check.items():
                if isinstance(spec, dict) and isinstance(spec.get("service"), str):
                    yield (("checks", index, kind, "service"), spec["service"])


def _refs_in(node: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(node, str):
        for name in references(node):
            yield path, name
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _refs_in(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs_in(value, (*path, index))
