"""Where a run's proxy listens for control requests: a short path, the same in every process.

Unix socket paths are limited to about 100 bytes, so the socket lives under the
system's temporary directory, by run id and service, not in the run's folder.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

_MAX_PATH = 100


FOLDER = "tc-netfault"


def in_run_folder(socket: Path) -> bool:
    """Whether ``socket`` lives in a run's own folder (:func:`control_socket`), which goes
    with the run; the folder of a proxy started by hand is its user's and stays."""
    return socket.parent.parent == Path(tempfile.gettempdir()) / FOLDER


def control_socket(run_id: str, service: str) -> Path:
    """The control socket of ``service``'s proxy in run ``run_id``."""
    folder = Path(tempfile.gettempdir()) / FOLDER / run_id
    path = folder / f"{service}.sock"
    if len(str(path)) > _MAX_PATH:
        path = folder / f"{hashlib.sha256(service.encode()).hexdigest()[:16]}.sock"
    return path
