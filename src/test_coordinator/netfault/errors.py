"""The package's exceptions: every failure a caller of netfault can see is one of these."""

from __future__ import annotations


class NetfaultError(Exception):
    """Base of every netfault error."""


class FaultSpecError(NetfaultError, ValueError):
    """A fault, a pulse or a control request is malformed; the message says which field and why."""


class NetfaultUnavailable(NetfaultError):
    """The proxy's control socket could not be reached, or did not answer in time."""


class NetfaultRejected(NetfaultError):
    """The proxy answered, and refused the request (``{"ok": false, "error": ...}``)."""


class ProxyBusy(FaultSpecError):
    """Another owner's fault is set on the proxy (``{"ok": false, "busy": true, ...}``)."""


class NetfaultBusy(NetfaultRejected):
    """The proxy refused a fault: another owner's is set (another run is faulting it)."""


class NetfaultStartError(NetfaultError):
    """A proxy process could not start: its address or control socket is taken or invalid."""
