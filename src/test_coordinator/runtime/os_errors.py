"""The operating system's wording for a failed socket or process call."""

from __future__ import annotations

import os


def os_error_reason(exc: OSError) -> str:
    """The system's wording for the error number ("Connection refused"), else the message.

    asyncio words a refused connect as "Connect call failed ('127.0.0.1', 80)",
    which hides the reason; the errno does not.
    """
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__
