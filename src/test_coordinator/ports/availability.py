"""Errors an adapter raises when a dependency does not do what was asked.

Adapters translate their client libraries' errors into these at the edge, so the
service layer can tell "the server is down, try later" from "the server refused
this for good" without knowing which client library is behind a port.
"""

from __future__ import annotations


class DependencyUnavailable(Exception):
    """A configured server (PostgreSQL, Redis) cannot be reached right now."""


class StorageUnavailable(DependencyUnavailable):
    """A read cannot be served: the store's server is down or still replaying writes."""


class RegistryUnavailable(DependencyUnavailable):
    """The service registry cannot be queried right now."""


class StorageRejected(Exception):
    """The server answered but refused the operation (bad data or a bug); retrying won't help."""
