"""A thread that follows the engine's container events and reports the ones that change state.

The engine's event vocabulary differs (Docker: ``destroy``, ``health_status: healthy``;
Podman: ``remove``, ``cleanup``, ``init``, bare ``health_status``), so an event is only a
hint: the callback is told which container changed, and inspects it. The stream is
reopened after a failure (the engine restarted); ``on_reconnect`` then lets the owner
refresh everything, since events may have been missed. Each stream is opened ``since``
(a second before) the watcher was made or the last event it saw, so the events between
then and the stream being open (it opens in the thread) are replayed, not lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STATE_ACTIONS = frozenset(
    {"create", "start", "restart", "die", "stop", "kill", "oom", "pause", "unpause"}
    | {"remove", "destroy", "cleanup", "rename"}
)
RECONNECT_S = 0.5
JOIN_S = 5.0


class EventWatcher:
    """Follows ``client.events(type=container)``; calls ``on_change(container_id)``."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        on_change: Callable[[str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._client_factory = client_factory
        self._on_change = on_change
        self._on_reconnect = on_reconnect
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._client: Any = None
        self._since = int(time.time()) - 1
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Close the stream (that unblocks the thread) and wait for the thread (bounded)."""
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _close_quietly(stream)
        if self._thread.is_alive():
            self._thread.join(JOIN_S)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            _close_quietly(client)

    def _run(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                with self._lock:
                    if self._client is None:
                        self._client = self._client_factory()
                    client = self._client
                stream = client.events(
                    decode=True, since=self._since, filters={"type": "container"}
                )
            except Exception as exc:
                log.debug("docker events: cannot open the stream: %s", exc)
                self._drop_client()
                self._stopping.wait(RECONNECT_S)
                continue
            with self._lock:
                self._stream = stream
            if self._stopping.is_set():
                break
            if not first:
                self._notify(self._on_reconnect)
            first = False
            try:
                for event in stream:
                    self._dispatch(event)
            except Exception as exc:
                if not self._stopping.is_set():
                    log.debug("docker events: stream broke: %s", exc)
            finally:
                with self._lock:
                    self._stream = None
                _close_quietly(stream)
            if not self._stopping.is_set():
                self._drop_client()
                self._stopping.wait(RECONNECT_S)
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            _close_quietly(stream)

    def _dispatch(self, event: Any) -> None:
        if not isinstance(event, dict) or event.get("Type", "container") != "container":
            return
        when = event.get("time")
        if isinstance(when, int) and when > self._since:
            self._since = when
        action = str(event.get("Action") or event.get("status") or "")
        if action.split(":", 1)[0] not in STATE_ACTIONS:
            return
        actor = event.get("Actor")
        cid = event.get("id") or (actor.get("ID") if isinstance(actor, dict) else None)
        if isinstance(cid, str) and cid:
            self._notify(lambda: self._on_change(cid))

    def _notify(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception as exc:  # the watcher must outlive one failed refresh
            log.debug("docker events: refresh failed: %s", exc)

    def _drop_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            _close_quietly(client)


def _close_quietly(closable: Any) -> None:
    try:
        closable.close()
    except Exception as exc:
        log.debug("docker events: close failed: %s", exc)
