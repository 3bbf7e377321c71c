"""Service identity: instance names and the storage they derive.

The ecosystem's convention (seeds: multi-instance foundation) is that a service
runs either as a singleton, whose instance name equals the service name, or as
a named instance ``{service}-{suffix}`` such as ``exchange-OKX``. Each instance
owns one PostgreSQL schema and one Redis namespace, derived here and nowhere
else so that the service, its data adapter and its tests agree.

Derivation, for a service ``trading-system-engine``:

* singleton ``trading-system-engine``: schema and namespace are the service
  name's first word, ``trading``;
* ``trading-system-engine-LH``: schema ``trading_system_engine_lh`` (the whole
  instance name, lower case, hyphens as underscores), namespace
  ``trading_system:LH`` (the service's first two words, then the suffix as
  written);
* an instance name that does not start with the service name, ``Blue``:
  schema ``blue`` and namespace ``Blue``.

Instance names are letters, digits and hyphens, so the schema map is one to one
up to letter case, and prefixed namespaces (which hold a colon) never meet
unprefixed ones. The one name that would collide, an unprefixed instance named
like the singleton's short form (``trading``), is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_MAX_LENGTH = 63
_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")

NAME_RULE = (
    f"letters, digits and hyphens, starting with a letter, at most {NAME_MAX_LENGTH} characters"
)


class InvalidName(ValueError):
    """A service or instance name breaks the naming rule."""


def check_name(value: str, *, what: str = "name") -> str:
    """Return ``value`` if it is a valid service or instance name, else raise InvalidName."""
    if not value:
        raise InvalidName(f"{what} is empty; allowed: {NAME_RULE}")
    if len(value) > NAME_MAX_LENGTH:
        raise InvalidName(f"{what} {value!r} has {len(value)} characters; allowed: {NAME_RULE}")
    if not _NAME_PATTERN.match(value):
        raise InvalidName(f"{what} {value!r} is not allowed; allowed: {NAME_RULE}")
    return value


def _short_name(service: str) -> str:
    return service.split("-", 1)[0].lower()


def _namespace_prefix(service: str) -> str:
    return "_".join(service.split("-")[:2])


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """Who this process is in the ecosystem: a service and one of its instances."""

    service: str
    instance: str

    def __post_init__(self) -> None:
        check_name(self.service, what="service name")
        check_name(self.instance, what="instance name")
        if not self.is_singleton and self.instance.lower() == _short_name(self.service):
            raise InvalidName(
                f"instance name {self.instance!r} is reserved: it is the storage name of the "
                f"singleton {self.service!r}; use {self.service}-{self.instance} instead"
            )

    @classmethod
    def of(cls, service: str, instance: str | None = None) -> ServiceIdentity:
        """The identity of ``instance`` of ``service``; no instance means the singleton."""
        return cls(service=service, instance=instance or service)

    @property
    def is_singleton(self) -> bool:
        return self.instance == self.service

    @property
    def suffix(self) -> str | None:
        """The part after ``{service}-`` for a prefixed named instance, else None."""
        prefix = f"{self.service}-"
        if self.instance.startswith(prefix) and len(self.instance) > len(prefix):
            return self.instance[len(prefix) :]
        return None

    @property
    def postgres_schema(self) -> str:
        """The derived PostgreSQL schema: always a valid, lower-case identifier."""
        if self.is_singleton:
            return _short_name(self.service)
        return self.instance.lower().replace("-", "_")

    @property
    def redis_namespace(self) -> str:
        """The derived Redis key prefix (keys are ``{namespace}:...``)."""
        if self.is_singleton:
            return _short_name(self.service)
        suffix = self.suffix
        if suffix is not None:
            return f"{_namespace_prefix(self.service)}:{suffix}"
        return self.instance
