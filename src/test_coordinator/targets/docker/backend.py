"""The ``docker`` backend: services as containers, behind the target port.

Built from the services' ``docker:`` sections. A service is either an existing
``container`` (found by name or id; faulted and restored, never created or
removed) or an ``image`` the run creates a container from, labelled with the run
id and the service (:data:`RUN_LABEL`, :data:`SERVICE_LABEL`), and removes at
the end. Nothing is ever pulled: a missing image is an error.

The Docker SDK client is made on first use from the environment
(``docker.from_env``: ``DOCKER_HOST`` honoured); its blocking calls run in
threads. :meth:`DockerBackend.state` is answered from a cache, kept current by
an inspect after every action and by a thread that follows the engine's events
(Docker and Podman name them differently; an event only triggers an inspect).
Every SDK exception becomes a one-line :class:`TargetError` naming the service.

After a crash, a backend built from the same specs :meth:`~DockerBackend.adopt`\\s
the container a handle names (by id, which the engine never reuses), and
:func:`run_containers` finds what a run left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import signal as signals
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from test_coordinator.targets.docker.config import (
    KIND,
    RUN_LABEL,
    SERVICE_LABEL,
    ContainerConfig,
    container_config,
)
from test_coordinator.targets.docker.errors import engine_url, one_line, translate
from test_coordinator.targets.docker.events import EventWatcher
from test_coordinator.targets.port import RunScope, TargetError, TargetSpec, TargetState

__all__ = ["KIND", "RUN_LABEL", "SERVICE_LABEL", "DockerBackend", "run_containers"]

T = TypeVar("T")
CLIENT_TIMEOUT_S = 30
"""Read timeout of an SDK call (a stop adds its grace to it); the events stream has none."""
STATE_WAIT_S = 5.0
"""How long a start, pause or resume may take to show in inspect."""
KILL_WAIT_S = 10.0
"""How long a container may take to be gone after SIGKILL (or after a stop's grace)."""
REMOVE_WAIT_S = 10.0
TERMINATING = frozenset({signals.SIGKILL, signals.SIGTERM, signals.SIGINT, signals.SIGQUIT})
_LIVE = (TargetState.RUNNING, TargetState.PAUSED)
_POLL_S = 0.02
_negotiated: dict[str, str] = {}
"""Engine address → the API version negotiated with it (see :func:`new_client`)."""


class _Closed(Exception):
    """The backend was closed: no client is made again."""


@dataclass(slots=True)
class _Seen:
    """What the latest inspect said about a service's container."""

    container_id: str | None = None
    container_name: str | None = None
    state: TargetState = TargetState.NOT_STARTED
    started_at: str | None = None
    looked: bool = False
    """False until an inspect was applied (a backend that has not acted yet, or adopted)."""
    seq: int = 0
    """Sequence number of the inspect applied: a later-started inspect always wins."""


class DockerBackend:
    kind = KIND

    def __init__(self, specs: Mapping[str, TargetSpec], scope: RunScope) -> None:
        self._scope = scope
        self._engine = engine_url()  # a recovery adopts the address its run used
        self._configs: dict[str, ContainerConfig] = {
            name: container_config(spec) for name, spec in specs.items()
        }
        self._seen: dict[str, _Seen] = {name: _Seen() for name in self._configs}
        self._by_id: dict[str, str] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._never_created: set[str] = set()
        """Services whose start failed before this backend could reach the engine at all:
        the run created nothing for them (a recovery's backend never has any)."""
        self._watcher: EventWatcher | None = None
        self._closed = False
        self._in_flight: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        """Per service, the engine call made last and its future: a call whose caller was
        cancelled (a step past its timeout) goes on in its thread until the engine answers."""

    # -- lifecycle ---------------------------------------------------------

    async def start(self, name: str) -> str:
        try:
            return await self._start(name)
        except TargetError:
            with self._client_lock:
                if self._client is None:  # no request of this start reached the engine
                    self._never_created.add(name)
            raise

    async def _start(self, name: str) -> str:
        config = self._config(name)
        seen = await self._refresh(name)
        if seen.container_id is None:
            if not config.owned:
                raise TargetError(f"{name}: container {config.container!r} does not exist")
            await self._call(
                name, f"create a container from {config.image}", lambda: self._create(name)
            )
            seen = await self._refresh(name)
        cid = _require_id(name, seen)
        if seen.state not in _LIVE:
            await self._call(name, "start", lambda: self._api().start(cid))
            seen = await self._wait_for(
                name, "start", lambda s: s.state is not TargetState.NOT_STARTED, STATE_WAIT_S
            )
        return _identity(cid, seen.started_at)

    async def stop(
        self, name: str, grace_s: float | None = None, signum: int | None = None
    ) -> None:
        grace = self._config(name).stop_grace_s if grace_s is None else grace_s
        seen = await self._refresh(name)
        if seen.state not in _LIVE:
            return
        cid = _require_id(name, seen)
        if seen.state is TargetState.PAUSED:
            # Podman refuses to stop a paused container ("container state improper").
            await self._call(name, "unpause before stopping", lambda: self._api().unpause(cid))
        if signum is not None:
            # The stop API (1.41) sends the image's stop signal: send the chosen one, give
            # it the grace, then the engine's kill.
            label = _signal_name(signum)
            await self._call(name, f"send {label}", lambda: self._api().kill(cid, signal=signum))
            seen = await self._wait_for(
                name, f"stop with {label}", lambda s: s.state not in _LIVE, grace, strict=False
            )
            if seen.state in _LIVE:
                await self._call(name, "kill", lambda: self._api().kill(cid, signal="SIGKILL"))
            await self._wait_for(name, "stop", lambda s: s.state not in _LIVE, KILL_WAIT_S)
            return
        timeout = max(0, math.ceil(grace))  # the API takes whole seconds
        await self._call(name, "stop", lambda: self._api().stop(cid, timeout=timeout))
        await self._wait_for(name, "stop", lambda s: s.state not in _LIVE, KILL_WAIT_S)

    async def restart(self, name: str) -> str:
        await self.stop(name)
        return await self.start(name)

    async def signal(self, name: str, signum: int) -> None:
        label = _signal_name(signum)
        seen = await self._refresh(name)
        if seen.state not in _LIVE:
            raise TargetError(f"{name}: not running ({seen.state}); cannot send {label}")
        cid = _require_id(name, seen)
        await self._call(name, f"send {label}", lambda: self._api().kill(cid, signal=int(signum)))
        if signum == signals.SIGKILL:
            await self._wait_for(name, f"exit after {label}", _gone, KILL_WAIT_S)
        elif signum in TERMINATING:
            # The service may handle (or ignore) it: wait as long as a stop would, no more.
            grace = self._config(name).stop_grace_s
            await self._wait_for(name, label, _gone, grace, strict=False)
        else:
            await self._refresh(name)

    async def pause(self, name: str) -> None:
        seen = await self._refresh(name)
        if seen.state is TargetState.PAUSED:
            return
        if seen.state is not TargetState.RUNNING:
            raise TargetError(f"{name}: not running ({seen.state}); cannot pause")
        cid = _require_id(name, seen)
        await self._call(name, "pause", lambda: self._api().pause(cid))
        await self._wait_for(
            name, "pause", lambda s: s.state is not TargetState.RUNNING, STATE_WAIT_S
        )

    async def resume(self, name: str) -> None:
        seen = await self._refresh(name)
        if seen.state not in _LIVE:
            raise TargetError(f"{name}: not running ({seen.state}); nothing to resume")
        if seen.state is TargetState.PAUSED:
            cid = _require_id(name, seen)
            await self._call(name, "unpause", lambda: self._api().unpause(cid))
        await self._wait_for(
            name, "unpause", lambda s: s.state is not TargetState.PAUSED, STATE_WAIT_S
        )

    async def remove(self, name: str) -> str:
        """Remove every container of this run and service, verified gone (by label)."""
        config = self._config(name)
        with contextlib.suppress(TargetError):  # the logs are a courtesy; removing is a must
            await self.sync_logs(name)
        if not config.owned:
            return f"{name}: container {config.container} left in place"
        if self._never_reached_the_engine(name):
            return f"{name}: no container to remove: the run never reached the Docker engine"
        removed = await self._call(name, "remove", lambda: self._remove(name))
        if not removed:
            return f"{name}: no container to remove"
        return f"{name}: removed container {', '.join(removed)}"

    async def close(self) -> None:
        """Copy the logs of the existing containers the run used (a run's own are copied when
        removed), stop following events, remove what the run still has (safety net), close
        the client."""
        with self._client_lock:
            used = self._client is not None and not self._closed
        for name, config in self._configs.items() if used else ():
            if not config.owned:
                with contextlib.suppress(TargetError):  # a courtesy for the report
                    await self.sync_logs(name)
        with self._client_lock:
            if self._closed:
                return
            self._closed = True
            client, watcher = self._client, self._watcher
            self._client, self._watcher = None, None
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)
        if client is None:
            return
        try:
            await asyncio.to_thread(self._sweep, client)
        finally:
            await asyncio.to_thread(client.close)

    # -- queries -----------------------------------------------------------

    def state(self, name: str) -> TargetState:
        return self._current(name).state

    def identity(self, name: str) -> str | None:
        seen = self._current(name)
        if seen.state not in _LIVE or seen.container_id is None:
            return None
        return _identity(seen.container_id, seen.started_at)

    def handle(self, name: str) -> dict[str, Any]:
        seen = self._current(name)
        return {
            "id": seen.container_id,
            "name": seen.container_name,
            "started_at": seen.started_at,
            "engine": self._engine,
        }

    def adopt(self, name: str, handle: Mapping[str, Any]) -> None:
        """Take over the container ``handle`` names; it is inspected on first use, through
        the engine the handle names (a recovery's DOCKER_HOST may differ from its run's)."""
        self._config(name)
        cid, cname = handle.get("id"), handle.get("name")
        engine = handle.get("engine")
        if isinstance(engine, str) and engine:
            with self._client_lock:
                if self._client is None:
                    self._engine = engine
        with self._lock:
            old = self._seen[name]
            if old.container_id is not None:
                self._by_id.pop(old.container_id, None)
            fresh = _Seen(
                container_id=cid if isinstance(cid, str) and cid else None,
                container_name=cname if isinstance(cname, str) else None,
                seq=self._seq,  # inspects already under way describe what was there before
            )
            if fresh.container_id is not None:
                self._by_id[fresh.container_id] = name
            self._seen[name] = fresh

    async def exit_problem(self, name: str) -> str | None:
        """The container's exit status and the last lines of its output, once it has stopped."""
        seen = await self._refresh(name)
        if seen.state in _LIVE or seen.container_id is None:
            return None
        cid = seen.container_id

        def read() -> tuple[Any, str]:
            attrs = self._api().inspect_container(cid)
            tail = self._api().logs(cid, stdout=True, stderr=True, tail=5)
            return attrs.get("State", {}).get("ExitCode"), tail.decode("utf-8", "replace")

        code, tail = await self._call(name, "read why it stopped", read)
        lines = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
        return f"{name} exited with status {code} before it was healthy" + (
            f"; output: {lines[-400:]}" if lines else ""
        )

    def log_paths(self, name: str) -> list[Path]:
        self._config(name)
        log_dir = self._scope.log_dir
        return [log_dir / f"{name}.out.log", log_dir / f"{name}.err.log"]

    async def sync_logs(self, name: str) -> None:
        """Write the container's stdout and stderr (each whole, apart) to :meth:`log_paths`."""
        paths = self.log_paths(name)
        ref = self._ref(name)
        if ref is None:
            for path in paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            return
        since = self._logs_since(name)
        await self._call(name, "read its logs", lambda: self._write_logs(ref, paths, since))

    def _logs_since(self, name: str) -> int | None:
        """From when an existing container's logs are copied: the run's start (whole
        seconds, a second early), not its whole history; a run's own container, whole."""
        started_ms = self._scope.started_at_ms
        if self._config(name).owned or started_ms is None:
            return None
        return max(0, started_ms // 1000 - 1)

    def owns(self, name: str) -> bool:
        return self._config(name).owned

    # -- engine calls (in threads) -----------------------------------------

    async def _call(self, name: str, doing: str, fn: Callable[[], T]) -> T:
        """Run one engine call in a thread, after the service's previous one has ended.

        A cancelled caller leaves its call running (a thread cannot be stopped): an undo
        that inspected the container meanwhile would see it running, start nothing, and
        then the stop would land. So each call first waits, bounded, for the one before.
        """
        await self.settled(name)
        call: asyncio.Future[T] = asyncio.ensure_future(
            asyncio.to_thread(_guarded, name, doing, fn, self._engine)
        )
        call.add_done_callback(_retrieve)
        self._in_flight[name] = (doing, call)
        return await asyncio.shield(call)

    async def settled(self, name: str) -> None:
        """Until the service's last engine call has ended (at most the client's timeout)."""
        previous = self._in_flight.get(name)
        if previous is not None and not previous[1].done():
            await asyncio.wait([previous[1]], timeout=CLIENT_TIMEOUT_S + 5.0)

    def _never_reached_the_engine(self, name: str) -> bool:
        """Whether ``name``'s start failed before any request reached the engine, and none
        has since: then this run created nothing for it."""
        with self._client_lock:
            return name in self._never_created and self._client is None

    def _client_now(self) -> Any:
        """The SDK client, made on first use (then the events thread starts)."""
        with self._client_lock:
            if self._closed:
                raise _Closed()
            if self._client is None:
                engine = self._engine
                self._client = new_client(engine)
                self._watcher = EventWatcher(
                    lambda: new_client(engine),
                    self._on_event,
                    self._on_reconnect,
                )
                self._watcher.start()
            return self._client

    def _api(self) -> Any:
        return self._client_now().api

    def _ref(self, name: str) -> str | None:
        """What to inspect: the container seen last, else the existing container's name."""
        with self._lock:
            cid = self._seen[name].container_id
        return cid or self._config(name).container

    def _inspect(self, name: str) -> _Seen:
        """Inspect the service's container and apply the result (unless a later one was)."""
        config = self._config(name)
        with self._lock:
            self._seq += 1
            seq = self._seq
        ref = self._ref(name)
        attrs = self._inspect_ref(ref) if ref is not None else None
        if attrs is None and config.container is not None and ref != config.container:
            attrs = self._inspect_ref(config.container)  # recreated under the same name
        seen = _seen_from(attrs, seq)
        with self._lock:
            current = self._seen[name]
            if seq <= current.seq:
                return dataclasses.replace(current)
            if current.container_id is not None and current.container_id != seen.container_id:
                self._by_id.pop(current.container_id, None)
            if seen.container_id is not None:
                self._by_id[seen.container_id] = name
            self._seen[name] = seen
            return dataclasses.replace(seen)

    def _inspect_ref(self, ref: str) -> dict[str, Any] | None:
        from docker.errors import NotFound

        try:
            attrs = self._api().inspect_container(ref)
        except NotFound:
            return None
        return attrs if isinstance(attrs, dict) else None

    def _create(self, name: str) -> None:
        from docker.errors import APIError, ImageNotFound

        config = self._config(name)
        client = self._client_now()
        image = str(config.image)
        missing = TargetError(
            f"{name}: image {image!r} is not present locally (no pull is attempted)"
        )
        try:
            client.images.get(image)
        except ImageNotFound:
            raise missing from None
        kwargs = config.create_kwargs(self._scope.run_id)
        try:
            cid = str(client.containers.create(image, **kwargs).id)
        except ImageNotFound:
            raise missing from None
        except APIError as exc:
            # A run that crashed and is resumed may find its own container under the name.
            found = self._ours_named(kwargs["name"], name)
            if found is None:
                detail = exc.explanation or exc
                raise TargetError(
                    one_line(f"{name}: cannot create container {kwargs['name']!r}: {detail}")
                ) from None
            cid = found
        with self._lock:
            self._seen[name].container_id = cid
            self._by_id[cid] = name

    def _ours_named(self, container_name: str, service: str) -> str | None:
        attrs = self._inspect_ref(container_name)
        if attrs is None:
            return None
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(RUN_LABEL) != self._scope.run_id or labels.get(SERVICE_LABEL) != service:
            return None
        return str(attrs["Id"])

    def _remove(self, name: str) -> list[str]:
        """Kill and remove the service's containers of this run; verified gone; their names."""
        from docker.errors import NotFound

        api = self._api()
        found = _labelled(api, self._scope.run_id, name)
        with self._lock:
            tracked = self._seen[name].container_id
            tracked_name = self._seen[name].container_name
        if tracked is not None and tracked not in found and self._inspect_ref(tracked):
            found[tracked] = tracked_name or tracked[:12]
        for cid in found:
            with contextlib.suppress(NotFound):
                api.remove_container(cid, force=True)
        deadline = time.monotonic() + REMOVE_WAIT_S
        while True:
            left = _labelled(api, self._scope.run_id, name)
            if tracked is not None and tracked not in left and self._inspect_ref(tracked):
                left[tracked] = tracked[:12]
            if not left:
                break
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"{name}: containers {sorted(left.values())} still present "
                    f"{REMOVE_WAIT_S:g} s after removal"
                )
            time.sleep(_POLL_S)
        self._inspect(name)
        return sorted(found.values())

    def _sweep(self, client: Any) -> None:
        """Remove every container labelled with this run (what close() must not leave)."""
        from docker.errors import NotFound

        try:
            found = _labelled(client.api, self._scope.run_id, None)
            for cid in found:
                with contextlib.suppress(NotFound):
                    client.api.remove_container(cid, force=True)
        except Exception as exc:
            raise translate(
                exc, f"run {self._scope.run_id}", "remove its containers", self._engine
            ) from exc

    def _write_logs(self, ref: str, paths: list[Path], since: int | None) -> None:
        from docker.errors import NotFound

        api = self._api()
        for path, stdout in ((paths[0], True), (paths[1], False)):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            try:
                chunks = api.logs(
                    ref, stdout=stdout, stderr=not stdout, stream=True, follow=False, since=since
                )
            except NotFound:
                return  # gone: keep what was written before
            try:
                with partial.open("wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
            except BaseException:
                chunks.close()
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, path)

    # -- the cache ---------------------------------------------------------

    def _current(self, name: str) -> _Seen:
        """The cached view; inspected here (blocking, once) if nothing was ever seen of an
        existing or adopted container, whose state cannot be known otherwise."""
        self._config(name)
        with self._lock:
            seen = dataclasses.replace(self._seen[name])
        if seen.looked or self._ref(name) is None:
            return seen
        return _guarded(name, "inspect", lambda: self._inspect(name), self._engine)

    async def _refresh(self, name: str) -> _Seen:
        return await self._call(name, "inspect", lambda: self._inspect(name))

    async def _wait_for(
        self,
        name: str,
        doing: str,
        done: Callable[[_Seen], bool],
        within_s: float,
        *,
        strict: bool = True,
    ) -> _Seen:
        """Inspect until ``done``; past ``within_s`` raise (or, not ``strict``, return)."""
        deadline = time.monotonic() + within_s
        while True:
            seen = await self._refresh(name)
            if done(seen) or (not strict and time.monotonic() >= deadline):
                return seen
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"{name}: still {seen.state} {within_s:g} s after {doing} (container "
                    f"{(seen.container_id or '?')[:12]})"
                )
            await asyncio.sleep(_POLL_S)

    def _on_event(self, container_id: str) -> None:
        with self._lock:
            name = self._by_id.get(container_id)
        if name is not None:
            self._inspect(name)

    def _on_reconnect(self) -> None:
        for name in self._configs:
            if self._ref(name) is not None:
                self._inspect(name)

    def _config(self, name: str) -> ContainerConfig:
        try:
            return self._configs[name]
        except KeyError:
            raise TargetError(f"{name}: not a docker service") from None


def run_containers(run_id: str) -> list[str]:
    """Names of the containers labelled with ``run_id`` (blocking; any engine state)."""
    try:
        client = new_client()
    except Exception as exc:
        raise translate(exc, f"run {run_id}", "list its containers") from exc
    try:
        return sorted(_labelled(client.api, run_id, None).values())
    except Exception as exc:
        raise translate(exc, f"run {run_id}", "list its containers") from exc
    finally:
        client.close()


def new_client(url: str | None = None) -> Any:
    """A Docker SDK client for the engine at ``url`` (default: the environment's
    ``DOCKER_HOST``, else the default socket).

    The API version is negotiated with the first client for an engine address and
    reused after: Podman takes a third of a second to answer ``/version``.
    """
    import docker

    url = url or engine_url()
    environment = {**os.environ, "DOCKER_HOST": url}  # and its TLS settings, as from_env
    version = _negotiated.get(url)
    client = docker.from_env(timeout=CLIENT_TIMEOUT_S, version=version, environment=environment)
    _negotiated[url] = str(client.api.api_version)
    return client


def _labelled(api: Any, run_id: str, service: str | None) -> dict[str, str]:
    """Id → name of every container (any state) carrying the run's (and service's) labels."""
    wanted = {RUN_LABEL: run_id}
    if service is not None:
        wanted[SERVICE_LABEL] = service
    listed = api.containers(all=True, filters={"label": [f"{k}={v}" for k, v in wanted.items()]})
    found: dict[str, str] = {}
    for entry in listed:
        labels = entry.get("Labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()):  # whatever the engine's filter did
            names = entry.get("Names") or [entry["Id"][:12]]
            found[str(entry["Id"])] = str(names[0]).lstrip("/")
    return found


def _retrieve(call: asyncio.Future[Any]) -> None:
    """Mark the outcome of a call nobody awaits any more (its caller was cancelled) as seen."""
    if not call.cancelled():
        call.exception()


def _guarded(name: str, doing: str, fn: Callable[[], T], engine: str) -> T:
    try:
        return fn()
    except TargetError:
        raise
    except _Closed:
        raise TargetError(f"{name}: {doing}: the docker backend is closed") from None
    except Exception as exc:
        raise translate(exc, name, doing, engine) from exc


def _seen_from(attrs: Mapping[str, Any] | None, seq: int) -> _Seen:
    if attrs is None:
        return _Seen(looked=True, seq=seq)
    state = attrs.get("State") or {}
    return _Seen(
        container_id=str(attrs["Id"]),
        container_name=str(attrs.get("Name") or "").lstrip("/") or None,
        state=_state_of(state),
        started_at=str(state.get("StartedAt") or "") or None,
        looked=True,
        seq=seq,
    )


def _state_of(state: Mapping[str, Any]) -> TargetState:
    status = str(state.get("Status") or "").lower()
    if state.get("Paused") or status == "paused":
        return TargetState.PAUSED
    if state.get("Restarting") or status == "restarting":
        return TargetState.EXITED  # between two incarnations: nothing runs
    if state.get("Running") or status == "running":
        return TargetState.RUNNING
    if status in ("", "created", "configured", "initialized"):
        return TargetState.NOT_STARTED
    return TargetState.EXITED  # exited, dead, stopped, removing


def _gone(seen: _Seen) -> bool:
    return seen.state not in _LIVE


def _identity(container_id: str, started_at: str | None) -> str:
    return f"{container_id[:12]}@{started_at or '?'}"


def _require_id(name: str, seen: _Seen) -> str:
    if seen.container_id is None:
        raise TargetError(f"{name}: its container is gone")
    return seen.container_id


def _signal_name(signum: int) -> str:
    try:
        return signals.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
