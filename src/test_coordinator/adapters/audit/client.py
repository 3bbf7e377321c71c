"""Ask the audit correlator what happened: ``GET {url}/api/v1/correlate``."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from test_coordinator.adapters.audit.wire import (
    MalformedAuditJson,
    correlation_from_json,
    event_from_json,
)
from test_coordinator.ports.audit import (
    AuditEvent,
    AuditQueryFailed,
    AuditUnavailable,
    Correlation,
)

CORRELATE_PATH = "/api/v1/correlate"
EVENTS_PATH = "/api/v1/events"


class AuditClient:
    """The AuditQuery port over HTTP. Errors: AuditUnavailable (no answer), AuditQueryFailed
    (an answer that is not a correlation). Close it, or use ``async with``."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._base = url.rstrip("/")
        self._client = client or httpx.AsyncClient(trust_env=False, timeout=timeout_s)
        self._owns_client = client is None
        self._timeout_s = timeout_s

    async def correlate(
        self,
        correlation_id: str | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        *,
        slack_ms: int | None = None,
        in_flight_ms: int | None = None,
    ) -> Correlation:
        params = _params(
            correlation_id=correlation_id,
            to=to_ms,
            slack_ms=slack_ms,
            in_flight_ms=in_flight_ms,
            **{"from": from_ms},
        )
        body = await self._get_json(CORRELATE_PATH, params)
        try:
            return correlation_from_json(body)
        except MalformedAuditJson as exc:
            raise AuditQueryFailed(f"audit correlator: {exc}") from None

    async def events(
        self,
        correlation_id: str | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        *,
        kind: str | None = None,
        source: str | None = None,
    ) -> list[AuditEvent]:
        """The stored events in the window, oldest first."""
        params = _params(
            correlation_id=correlation_id, to=to_ms, kind=kind, source=source, **{"from": from_ms}
        )
        body = await self._get_json(EVENTS_PATH, params)
        try:
            return [event_from_json(item) for item in body["events"]]
        except (MalformedAuditJson, KeyError, TypeError) as exc:
            raise AuditQueryFailed(f"audit correlator: not a list of events: {exc}") from None

    async def close(self) -> None:
        if self._owns_client:
            self._owns_client = False
            await self._client.aclose()

    async def __aenter__(self) -> AuditClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _get_json(self, path: str, params: dict[str, str]) -> Any:
        url = self._base + path
        try:
            response = await self._client.get(url, params=params, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise AuditUnavailable(f"audit correlator at {self._base}: {exc!r}") from exc
        if response.status_code >= 500:
            raise AuditUnavailable(f"audit correlator at {self._base}: HTTP {response.status_code}")
        if response.status_code != 200:
            raise AuditQueryFailed(
                f"audit correlator: HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError:
            raise AuditQueryFailed("audit correlator: the answer is not JSON") from None


def _params(**values: object) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}
