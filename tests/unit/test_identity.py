"""Schema and namespace derivation: the ecosystem's table, and its invariants."""

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from test_coordinator.domain.identity import InvalidName, ServiceIdentity

DERIVATIONS = [
    ("test-coordinator", None, "test", "test"),
    ("test-coordinator", "test-coordinator", "test", "test"),
    (
        "test-coordinator",
        "test-coordinator-Chaos1",
        "test_coordinator_chaos1",
        "test_coordinator:Chaos1",
    ),
    (
        "trading-system-engine",
        "trading-system-engine-LH",
        "trading_system_engine_lh",
        "trading_system:LH",
    ),
    (
        "trading-system-engine",
        "trading-system-engine-Alpha-2",
        "trading_system_engine_alpha_2",
        "trading_system:Alpha-2",
    ),
    ("audit-correlator", "audit-correlator", "audit", "audit"),
]

PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,62}\Z")


@pytest.mark.parametrize(("service", "instance", "schema", "namespace"), DERIVATIONS)
def test_derivation_table(service: str, instance: str | None, schema: str, namespace: str) -> None:
    """The table every service of the ecosystem agrees on."""
    identity = ServiceIdentity.of(service, instance)

    assert schema == identity.postgres_schema
    assert namespace == identity.redis_namespace


@given(names, names)
def test_distinct_instances_never_share_storage(first: str, second: str) -> None:
    """Instance names that differ in more than case derive different schemas and namespaces."""
    assume(first.lower() != second.lower())
    try:
        a = ServiceIdentity.of("test-coordinator", first)
        b = ServiceIdentity.of("test-coordinator", second)
    except InvalidName:
        assume(False)
        return

    assert a.postgres_schema != b.postgres_schema
    assert a.redis_namespace != b.redis_namespace


@given(st.sampled_from(["test-coordinator", "exchange-simulator", "risk"]), names)
def test_prefixed_instances_never_share_storage_with_their_singleton(
    service: str, suffix: str
) -> None:
    """A named instance of a service never lands in its singleton's schema or namespace."""
    instance = f"{service}-{suffix}"[:63]
    assume(not instance.endswith("-"))
    singleton = ServiceIdentity.of(service)
    named = ServiceIdentity.of(service, instance)

    assert singleton.postgres_schema != named.postgres_schema
    assert singleton.redis_namespace != named.redis_namespace


@given(names)
def test_every_derived_schema_is_a_postgres_identifier(instance: str) -> None:
    """Derived schemas need no quoting: lower case, at most 63 characters."""
    try:
        identity = ServiceIdentity.of("test-coordinator", instance)
    except InvalidName:
        assume(False)
        return

    assert PG_IDENTIFIER.match(identity.postgres_schema)


@pytest.mark.parametrize("bad", ["bad name!", "1abc", "-abc", "a" * 64, "abc_def", ""])
def test_invalid_instance_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidName):
        ServiceIdentity(service="test-coordinator", instance=bad)


def test_unprefixed_name_equal_to_the_singleton_storage_is_reserved() -> None:
    """'test' would share the singleton test-coordinator's schema, so it is refused."""
    with pytest.raises(InvalidName, match="reserved"):
        ServiceIdentity.of("test-coordinator", "Test")


def test_unprefixed_instance_gets_its_own_storage() -> None:
    identity = ServiceIdentity.of("test-coordinator", "Blue-2")

    assert ("blue_2", "Blue-2") == (identity.postgres_schema, identity.redis_namespace)
