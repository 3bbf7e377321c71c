"""Structured logging: one line per event, every line naming this instance.

All logging goes through the standard library: structlog loggers hand their
event dictionaries to it, and one handler on the root logger renders every
record, ours and foreign (uvicorn, grpc, SQLAlchemy, alembic, any library),
with structlog's ProcessorFormatter. The rendering chain adds the identity
(``service_name``, ``instance_name``, ``environment``) and masks passwords in
URLs, so no line escapes either. Lines are JSON in docker and production, and
readable ``key=value`` console lines otherwise.

structlog itself loads when first needed (the first record that passes the level,
or the first :func:`get_logger`), so a CLI run that logs nothing never imports it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import structlog
    from structlog.typing import EventDict, Processor, WrappedLogger

    from test_coordinator.config import Settings

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#]*):(?P<password>[^\s/?#]*)@"
)
_MASKED = r"\g<prefix>:***@"
_PLAIN_TYPES = (int, float, bool, type(None))


def redact_url_passwords(text: str) -> str:
    """``scheme://user:secret@host`` becomes ``scheme://user:***@host``, anywhere in ``text``."""
    if "://" not in text:
        return text
    return _URL_CREDENTIALS.sub(_MASKED, text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_url_passwords(value)
    if isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, Mapping):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(item) for item in value]
    # Renderers fall back to repr(): mask what it would show, keep the object otherwise.
    shown = repr(value)
    masked = redact_url_passwords(shown)
    return value if masked == shown else masked


def redact_passwords(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: mask URL passwords in the event and in every value, nested ones included."""
    for key, value in event_dict.items():
        if not key.startswith("_"):
            event_dict[key] = _redact(value)
    return event_dict


class AddIdentity:
    """Processor: stamp the instance's identity on every event, whatever thread logs it."""

    __slots__ = ("_fields",)

    def __init__(self, service_name: str, instance_name: str, environment: str) -> None:
        self._fields = {
            "service_name": service_name,
            "instance_name": instance_name,
            "environment": environment,
        }

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.update(self._fields)
        return event_dict


def _foreign_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Turn uvicorn's access-log arguments into fields; drop what only colours terminals."""
    args = event_dict.pop("positional_args", ())
    event_dict.pop("color_message", None)
    record = event_dict.get("_record")
    if record is not None and record.name == "uvicorn.access" and len(args) == 5:
        client, method, path, http_version, status = args
        event_dict.update(
            client=client, method=method, path=path, http_version=http_version, status=status
        )
    return event_dict


def _stamps() -> tuple[Processor, ...]:
    import structlog

    return (
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    )


class _StructuredHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler this module installs; found and replaced on reconfiguration.

    Its formatter is built, and structlog configured, on the first record it formats.
    """

    def __init__(self, stream: TextIO, settings: Settings) -> None:
        super().__init__(stream)
        self.settings = settings

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:
            _realize(self)
        return super().format(record)


_installed: _StructuredHandler | None = None


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Route all logging through one structured handler on ``stream`` (stderr by default).

    Idempotent: a second call replaces the handler the first one installed and
    leaves other handlers (pytest's, for example) alone.
    """
    global _installed
    handler = _StructuredHandler(stream if stream is not None else sys.stderr, settings)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StructuredHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Alembic tells at INFO how it set itself up, at every start of a command with a server:
    # noise unless debugging.
    logging.getLogger("alembic").setLevel(
        logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    )
    # grpc's C core writes its own unstructured lines to stderr; keep those to errors.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    _installed = handler
    if "structlog" in sys.modules:
        _realize(handler)


def _realize(handler: _StructuredHandler) -> None:
    """Give ``handler`` its structlog formatter and route structlog loggers through it."""
    import structlog

    settings = handler.settings
    renderer: Processor
    if settings.environment.wants_json_logs:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(handler.stream))
    stamps = _stamps()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*stamps, structlog.stdlib.ExtraAdder(), _foreign_fields],
            pass_foreign_args=True,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                AddIdentity(
                    settings.service_name,
                    settings.service_instance_name,
                    settings.environment.value,
                ),
                # Plain tracebacks before masking: rich's would print local variables unmasked.
                structlog.processors.format_exc_info,
                redact_passwords,
                renderer,
            ],
        )
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *stamps,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a module-level logger used before configure_logging() would
        # otherwise keep structlog's defaults for the life of the process.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; usable at import time, configured by configure_logging()."""
    import structlog

    if _installed is not None and _installed.formatter is None:
        _realize(_installed)
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def uvicorn_log_config() -> dict[str, Any]:
    """A ``log_config`` for ``uvicorn.Config``: no handlers of its own, lines go to ours.

    Whether uvicorn writes access lines at all is its ``access_log`` argument;
    off, a request costs no logging work.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }


def uvicorn_logging_options(*, access_log: bool = False) -> dict[str, Any]:
    """Logging arguments for uvicorn: ``uvicorn.Config(app, **uvicorn_logging_options())``."""
    return {"log_config": uvicorn_log_config(), "access_log": access_log}


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
