"""The run guard: a watchdog process that undoes a run if its coordinator dies.

Each run starts one (:mod:`.launcher`) in its own session, so a signal to the
coordinator's process group does not reach it. It waits on a pipe whose only
writer is the coordinator: the kernel closes it when the coordinator exits, for
any reason, SIGKILL included. A run that ends normally writes ``done`` first
and the guard exits without doing anything; otherwise the guard (``python -m
test_coordinator.guard``) undoes the run through the same recovery as
``test-coordinator recover`` and writes its reports. Testcontainers' Ryuk does
this for containers; here it covers every fault and every process.
"""
