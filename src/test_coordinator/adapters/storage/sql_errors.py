"""SQLAlchemy and driver errors stop here, as StorageUnavailable or StorageRejected."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from test_coordinator.adapters.redact import redact_text
from test_coordinator.ports.availability import StorageRejected, StorageUnavailable

# OSError covers refused and reset connections and driver timeouts (TimeoutError).
_UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, OSError)


@contextlib.asynccontextmanager
async def connected(engine: AsyncEngine, name: str) -> AsyncIterator[AsyncConnection]:
    """A connection from ``engine``'s pool; every failure leaves as one of our errors.

    Any failure to connect means the server is unavailable (refused, unknown
    database, bad credentials: all things that an operator fixes while we wait).
    """
    try:
        connection = await engine.connect()
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise StorageUnavailable(f"{name}: cannot connect: {describe(exc)}") from exc
    try:
        yield connection
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc, _UNREACHABLE):
            raise StorageUnavailable(f"{name}: connection lost: {describe(exc)}") from exc
        raise StorageRejected(f"{name}: {describe(exc)}") from exc
    except _UNREACHABLE as exc:
        raise StorageUnavailable(f"{name}: connection lost: {describe(exc)}") from exc
    except sa.exc.SQLAlchemyError as exc:
        raise StorageRejected(f"{name}: {describe(exc)}") from exc
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError, OSError):
            await connection.close()


def describe(exc: BaseException) -> str:
    """One line about ``exc`` without the SQL text or parameters, nor any password."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return redact_text(f"{type(original).__name__}: {text}" if text else type(original).__name__)
