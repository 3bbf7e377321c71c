"""Storage adapters: runs in SQLite or PostgreSQL, live state in Redis, outage-proof writes."""

from test_coordinator.adapters.storage.adapter import DataAdapter
from test_coordinator.adapters.storage.engines import StorageConfigError
from test_coordinator.adapters.storage.remote import ReconnectPolicy
from test_coordinator.ports.availability import StorageRejected, StorageUnavailable

__all__ = [
    "DataAdapter",
    "ReconnectPolicy",
    "StorageConfigError",
    "StorageRejected",
    "StorageUnavailable",
]
