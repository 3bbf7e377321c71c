"""``python -m test_coordinator.netfault --listen HOST:PORT --upstream HOST:PORT --control PATH``.

Prints ``netfault listening on PORT`` once it accepts connections and control
requests (PORT is the one it got when asked for 0). SIGTERM stops it (exit 0);
an address or control socket it cannot take exits 1, bad arguments 2. Imports
only the standard library, this package and ``runtime.os_limits``, so it starts in
tens of milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from test_coordinator.netfault.errors import NetfaultStartError
from test_coordinator.netfault.server import serve
from test_coordinator.runtime.os_limits import allow_open_files

OPEN_FILES = 1 << 20


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed: about 25 µs less per proxied round trip.

    The delay queues do not use the loop's timers (see :mod:`timers`), so
    uvloop's millisecond clock costs no accuracy.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    return uvloop.new_event_loop


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m test_coordinator.netfault",
        description="A TCP proxy that applies network faults set through a Unix control socket.",
    )
    parser.add_argument("--listen", required=True, type=parse_address, help="HOST:PORT (0: any)")
    parser.add_argument("--upstream", required=True, type=parse_address, help="HOST:PORT")
    parser.add_argument("--control", required=True, type=Path, help="Unix socket path")
    args = parser.parse_args(argv)
    # Every connection through the proxy costs two descriptors, and containers start
    # processes with a soft limit of 1024: up to the hard limit.
    allow_open_files(OPEN_FILES)
    try:
        with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
            runner.run(serve(args.listen, args.upstream, args.control))
    except NetfaultStartError as exc:
        print(f"netfault: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
