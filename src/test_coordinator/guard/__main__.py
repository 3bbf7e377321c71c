"""``python -m test_coordinator.guard RUN_ID``: wait for the coordinator; undo the run if it died.

Imports only the standard library until it has to act, so that it starts in
milliseconds and costs no memory while the run goes well.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m test_coordinator.guard RUN_ID", file=sys.stderr)
        return 2
    run_id = argv[1]
    import os

    received = b""
    while True:  # until EOF: the coordinator closed its end, or died
        chunk = os.read(0, 64)
        if not chunk:
            break
        received += chunk
    if received.startswith(b"done"):
        return 0
    started = time.monotonic()
    print(f"guard: the coordinator of run {run_id} died; undoing the run", flush=True)
    import asyncio

    from test_coordinator.entrypoints.recovery_session import recover_in_guard

    code = asyncio.run(recover_in_guard(run_id))
    print(f"guard: done in {time.monotonic() - started:.2f} s (exit {code})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
