"""The scenario engine: runs a loaded scenario with enforced timeouts and guaranteed undo.

Entry point: :func:`test_coordinator.engine.executor.run_scenario`.
"""
