"""test-coordinator: resilience testing for the Trading Ecosystem."""

import functools


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
