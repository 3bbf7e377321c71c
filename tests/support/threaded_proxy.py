"""A TcpProxy on its own event loop thread, for tests that drive a child process synchronously."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from support.tcp_proxy import TcpProxy

CALL_DEADLINE_S = 10.0


class ThreadedProxy:
    def __init__(self, target_url: str, default_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = TcpProxy.for_url(target_url, default_port)
        self._call(self.proxy.start())

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=CALL_DEADLINE_S)

    def rewrite(self, url: str) -> str:
        return self.proxy.rewrite(url)

    def cut(self) -> None:
        self._call(self.proxy.cut())

    def restore(self) -> None:
        self._call(self.proxy.restore())

    def close(self) -> None:
        self._call(self.proxy.cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_DEADLINE_S)
        self._loop.close()
