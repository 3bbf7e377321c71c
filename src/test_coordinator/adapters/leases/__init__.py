"""Leases on shared targets: in this process, or in Redis for coordinators that share one."""

from test_coordinator.adapters.leases.local import LocalLeases

__all__ = ["LocalLeases"]
