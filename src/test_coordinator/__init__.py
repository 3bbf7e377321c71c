"""test-coordinator: resilience testing for the Trading Ecosystem."""

import functools
import os

# The coordinator forks processes (services, probes, guards) while gRPC runs in the same
# process (serve). gRPC's fork handlers then run in each child between fork and exec, and
# killed children with SIGSEGV; the children exec at once and need no gRPC. Off unless
# the environment says otherwise; set before any module of the package imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


@functools.cache
def package_version() -> str:
    """The installed distribution's version, or ``0.0.0+unknown`` from a bare checkout.

    Read once: importlib.metadata finds and parses the METADATA file on every call,
    which was most of the cost of a health check."""
    from importlib.metadata import PackageNotFoundError, version  # lazy: keeps --help fast

    try:
        return version("test-coordinator")
    except PackageNotFoundError:  # pragma: no cover - only without an install
        return "0.0.0+unknown"


__all__ = ["package_version"]
