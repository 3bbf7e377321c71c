"""``python -m test_coordinator.sample <service>``: run one sample service until SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from test_coordinator.config import SettingsError, load_settings
from test_coordinator.infrastructure.logging import configure_logging
from test_coordinator.sample import SERVICES

# service -> (module, serves gRPC); imported on demand, so each starts only what it needs
_MODULES = {
    "exchange-simulator": ("test_coordinator.sample.exchange", False),
    "trading-system-engine": ("test_coordinator.sample.trading_engine", True),
    "audit-correlator": ("test_coordinator.sample.audit_correlator", False),
}
USAGE = f"usage: python -m test_coordinator.sample {{{','.join(SERVICES)}}}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in _MODULES:
        print(USAGE, file=sys.stderr)
        return 0 if args in (["-h"], ["--help"]) else 2
    service = args[0]
    module_name, grpc = _MODULES[service]
    environ = dict(os.environ)
    try:
        settings = load_settings(
            **({} if environ.get("SERVICE_NAME") else {"service_name": service})
        )
    except SettingsError as exc:
        print(f"{service}: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    # One line per order would drown the services' own lines.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.root.level))
    from test_coordinator.sample.host import serve_sample
    from test_coordinator.service.http_serving import StartupError

    module = importlib.import_module(module_name)
    try:
        asyncio.run(serve_sample(settings, module.build, environ, grpc=grpc))
    except SettingsError as exc:
        print(f"{service}: invalid settings: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
