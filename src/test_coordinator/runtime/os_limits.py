"""The process's own limits: standard library only (the netfault proxy imports it too)."""

from __future__ import annotations

import contextlib


def allow_open_files(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted`` (never past the hard limit,
    never lowering it); the soft limit now in force (0 where there is no such limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return int(soft)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return int(target)
    return int(soft)
