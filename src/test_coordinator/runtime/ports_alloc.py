"""Free local TCP ports for the services a run starts."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now.

    The kernel picks it (bind to port 0) and the socket is closed before
    returning, so another process could take it before the caller does; the
    kernel hands out ephemeral ports in rotation, which keeps that unlikely.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
