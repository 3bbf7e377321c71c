"""Targets: what the engine acts on (a local process, a container), behind one port.

:mod:`.port` is the interface, :mod:`.router` sends each service to the backend
of its kind, :mod:`.wiring` is the one place that knows every backend. Each
backend is a sub-package (``process``, ``docker``). Nothing here is imported
by the package itself, so the CLI pays only for the backends a run uses.
"""
