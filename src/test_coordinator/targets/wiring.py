"""The one place that knows every backend: builds a run's targets from its services."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from test_coordinator.targets.port import RunScope, TargetBackend, TargetError, TargetSpec
from test_coordinator.targets.router import RunTargets

BackendConstructor = Callable[[Mapping[str, TargetSpec], RunScope], TargetBackend]


def _process(specs: Mapping[str, TargetSpec], scope: RunScope) -> TargetBackend:
    from test_coordinator.targets.process.backend import ProcessBackend

    return ProcessBackend(specs, scope)


def _docker(specs: Mapping[str, TargetSpec], scope: RunScope) -> TargetBackend:
    from test_coordinator.targets.docker.backend import DockerBackend

    return DockerBackend(specs, scope)


def _proxy(specs: Mapping[str, TargetSpec], scope: RunScope) -> TargetBackend:
    from test_coordinator.targets.proxy import proxy_backend

    return proxy_backend(specs, scope)


def _existing_proxy(specs: Mapping[str, TargetSpec], scope: RunScope) -> TargetBackend:
    from test_coordinator.targets.existing_proxy import ExistingProxyBackend

    return ExistingProxyBackend(specs, scope)


BACKENDS: dict[str, BackendConstructor] = {
    "process": _process,
    "docker": _docker,
    "proxy": _proxy,
    "existing-proxy": _existing_proxy,
}
"""Backend constructors by service kind (a proxy with ``control:`` is an existing one);
imported lazily, so a run pays only for its kinds."""


def backend_kind(spec: TargetSpec) -> str:
    """Which backend serves ``spec``: its kind, except for a proxy that exists outside the run."""
    if spec.kind == "proxy" and spec.config.get("control"):
        return "existing-proxy"
    return spec.kind


def build_targets(specs: Mapping[str, TargetSpec], scope: RunScope) -> RunTargets:
    """One backend per kind among ``specs``, each serving its services."""
    by_kind: dict[str, dict[str, TargetSpec]] = {}
    for name, spec in specs.items():
        by_kind.setdefault(backend_kind(spec), {})[name] = spec
    backends: dict[str, TargetBackend] = {}
    for kind, group in by_kind.items():
        constructor = BACKENDS.get(kind)
        if constructor is None:
            raise TargetError(f"no backend for {kind!r} services; known: {', '.join(BACKENDS)}")
        backend = constructor(group, scope)
        for name in group:
            backends[name] = backend
    return RunTargets(backends)
