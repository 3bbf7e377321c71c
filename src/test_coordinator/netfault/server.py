"""A netfault proxy as its own process: the proxy, its control socket, SIGTERM to stop.

The control socket is a Unix socket (mode 0600: only its owner may fault the
network) speaking JSON lines (:mod:`control`). A stale socket file left by a
killed proxy is replaced; one that still answers is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from test_coordinator.netfault.control import encode_reply, error_reply, handle_request
from test_coordinator.netfault.errors import NetfaultStartError
from test_coordinator.netfault.paths import in_run_folder
from test_coordinator.netfault.proxy import NetfaultProxy

CONTROL_LINE_LIMIT = 64 * 1024
RELISTEN_WAIT_S = 1.0
"""How long a request that cleared a refuse waits for the proxy to listen again."""


def _print_now(line: str) -> None:
    print(line, flush=True)


async def serve(
    listen: tuple[str, int],
    upstream: tuple[str, int],
    control_path: Path,
    *,
    announce: Callable[[str], None] = _print_now,
) -> None:
    """Run until SIGTERM or SIGINT; ``announce`` gets "netfault listening on PORT" when ready."""
    proxy = NetfaultProxy(listen, upstream)
    control = ControlServer(proxy, control_path)
    # The control socket first: once the listen port answers (a run's health check), the
    # faults can be set.
    await control.start()
    try:
        try:
            await proxy.start()
        except OSError as exc:
            raise NetfaultStartError(f"cannot listen on {listen[0]}:{listen[1]}: {exc}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        announce(f"netfault listening on {proxy.port}")
        await stop.wait()
    finally:
        await control.close()
        await proxy.close()


class ControlServer:
    def __init__(self, proxy: NetfaultProxy, path: Path) -> None:
        self.proxy = proxy
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        _claim(self.path)
        try:
            sock = _bind_private(self.path)
        except OSError as exc:
            raise NetfaultStartError(
                f"cannot listen on control socket {self.path}: {exc}"
            ) from None
        self._inode = self.path.stat().st_ino
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=CONTROL_LINE_LIMIT
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(OSError):
            if self._inode is not None and self.path.stat().st_ino == self._inode:
                self.path.unlink()
                # A run's socket folder goes with its last proxy (a non-empty one stays);
                # the folder of a proxy started by hand is left where it was.
                if in_run_folder(self.path):
                    self.path.parent.rmdir()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the limit
                    writer.write(encode_reply(error_reply("request line too long")))
                    break
                if not line:
                    break
                if line.strip():
                    reply = handle_request(self.proxy, line)
                    # A cleared refuse is answered once the proxy listens again (or says
                    # why it cannot): whoever heals sees the port restored, not a promise.
                    await self.proxy.listening_settled(RELISTEN_WAIT_S)
                    writer.write(encode_reply(reply))
                    await writer.drain()
        except OSError:
            pass  # the client went away
        finally:
            self._writers.discard(writer)
            writer.close()


def _bind_private(path: Path) -> socket.socket:
    """A Unix socket bound at ``path`` with mode 0600 from the start (no window for others)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # process-wide, but nothing else runs until it is restored
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(umask)
    return sock


def _claim(path: Path) -> None:
    """Make ``path`` free for a new control socket, unless a live proxy answers on it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise NetfaultStartError(f"control socket {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        except OSError as exc:
            raise NetfaultStartError(f"control socket {path}: {exc}") from None
    raise NetfaultStartError(f"control socket {path} is in use by a running proxy")
