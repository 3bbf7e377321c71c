"""Bearer-token access to the runs API.

The token is a setting (``API_TOKEN``). When it is set, every call on runs and
scenarios must carry ``Authorization: Bearer <token>``; the comparison takes the
same time whatever the guess. Without a token the API is open to this machine's
own clients only, which ``serve`` allows only on a loopback address (see
:func:`check_exposure`): a request that names another host (DNS rebinding) or
comes from a web page of any site (its ``Origin``) is refused, since a browser on
this machine would otherwise let any page cancel runs. Health, readiness and
metrics stay open: the ecosystem's probes and Prometheus need them.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from test_coordinator.config import Settings

bearer = HTTPBearer(auto_error=False, description="The service's API_TOKEN")


class ExposedWithoutToken(Exception):
    """The service would listen beyond this machine with no token: anyone could run chaos."""


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback HTTP_HOST without an API_TOKEN."""
    if settings.api_token is None and not settings.loopback_only:
        raise ExposedWithoutToken(
            f"HTTP_HOST {settings.http_host} is reachable from other machines and API_TOKEN "
            "is not set: anyone who reaches the port could start and cancel runs. Set "
            "API_TOKEN, or listen on 127.0.0.1"
        )


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the token given with the one expected."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    settings: Settings = request.app.state.service.settings
    if settings.api_token is None:
        refused = not_from_this_machine(request.headers.get("host"), request.headers.get("origin"))
        if refused is not None:
            raise HTTPException(status_code=403, detail=refused)
        return
    given = credentials.credentials if credentials is not None else None
    if not token_matches(settings.api_token.get_secret_value(), given):
        raise HTTPException(
            status_code=401,
            detail="a valid bearer token is needed (Authorization: Bearer <API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def not_from_this_machine(host: str | None, origin: str | None) -> str | None:
    """Why a request to the tokenless API is not one of this machine's own clients, or
    None. ``host`` is its Host header, ``origin`` its Origin (a browser sends one)."""
    if host is not None and not _loopback_name(urlsplit(f"//{host}").hostname):
        return (
            f"Host {host!r} is not this machine: without API_TOKEN the runs API answers "
            "only requests for 127.0.0.1, ::1 or localhost"
        )
    if origin is not None:
        return (
            f"a request from a web page ({origin}) is refused: without API_TOKEN the runs "
            "API answers only this machine's own clients, never a browser's"
        )
    return None


def _loopback_name(name: str | None) -> bool:
    if name is None:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
