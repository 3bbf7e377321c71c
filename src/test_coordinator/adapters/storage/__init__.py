"""Storage adapters: runs in SQLite or PostgreSQL, live state in Redis, outage-proof writes.

The names below load on first use, so that a module of this package that needs
no SQLAlchemy (the CLI's SQLite file store) can be imported without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from test_coordinator.ports.availability import StorageRejected, StorageUnavailable

if TYPE_CHECKING:
    from test_coordinator.adapters.storage.adapter import DataAdapter
    from test_coordinator.adapters.storage.engines import StorageConfigError
    from test_coordinator.adapters.storage.remote import ReconnectPolicy

__all__ = [
    "DataAdapter",
    "ReconnectPolicy",
    "StorageConfigError",
    "StorageRejected",
    "StorageUnavailable",
]

_LAZY = {
    "DataAdapter": "test_coordinator.adapters.storage.adapter",
    "StorageConfigError": "test_coordinator.adapters.storage.engines",
    "ReconnectPolicy": "test_coordinator.adapters.storage.remote",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
