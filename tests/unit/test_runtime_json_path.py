"""JSON paths: the walk the probes' json_fields and the executor's captures rely on."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_coordinator.runtime.json_path import (
    JsonPathError,
    json_path,
    parse_json_path,
)

DOC = {
    "status": "healthy",
    "checks": [{"name": "db", "ok": True}, {"name": "cache", "ok": False}],
    "meta": {"version": {"major": 2}, "dotted.key": 7},
    "matrix": [[1, 2], [3, 4]],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("status", "healthy"),
        ("checks[0].name", "db"),
        ("checks[-1].ok", False),
        ("checks.1.name", "cache"),
        ("meta.version.major", 2),
        ('meta["dotted.key"]', 7),
        ("meta['dotted.key']", 7),
        ("$.matrix[1][0]", 3),
        ("$", DOC),
        ("", DOC),
    ],
)
def test_walks_objects_and_lists(path: str, expected: object) -> None:
    """Keys, indexes (negative too), quoted keys and the root all resolve."""
    assert expected == json_path(DOC, path)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope", "no key 'nope' at $"),
        ("meta.version.minor", "no key 'minor' at $.meta.version"),
        ("checks[5]", "index 5 out of range at $.checks (length 2)"),
        ("checks.name", "$.checks is a list"),
        ("status.length", "$.status is str 'healthy', nothing inside"),
    ],
)
def test_missing_parts_name_where_the_walk_stopped(path: str, message: str) -> None:
    """A path that leads nowhere raises JsonPathError saying where it stopped."""
    with pytest.raises(JsonPathError, match=re.escape(message)):
        json_path(DOC, path)


def test_a_long_value_in_a_message_is_cut_short() -> None:
    """A page of HTML where JSON was expected is named, not printed whole."""
    page = "<!DOCTYPE HTML>" + "x" * 5000

    with pytest.raises(JsonPathError) as caught:
        json_path(page, "status")

    message = str(caught.value)
    assert message.startswith("status: $ is str '<!DOCTYPE HTML>xxx")
    assert message.endswith("... (5017 characters), nothing inside")
    assert len(message) < 200


@pytest.mark.parametrize("path", ["a..b", "a[", "a[x]", "a]b", "a[0]b"])
def test_malformed_paths_are_refused(path: str) -> None:
    """A path that cannot be parsed is an error, not a silent miss."""
    with pytest.raises(JsonPathError, match="malformed"):
        parse_json_path(path)


def test_json_path_error_is_a_lookup_error() -> None:
    """Callers may catch it as LookupError."""
    with pytest.raises(LookupError):
        json_path({}, "a")


keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=8)
leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=5)


@given(st.lists(st.tuples(keys, st.integers(min_value=0, max_value=3)), max_size=5), leaves)
def test_a_built_path_finds_what_was_put_there(steps: list[tuple[str, int]], leaf: object) -> None:
    """Nest a value under keys and list positions; the matching path returns it."""
    value: object = leaf
    for key, index in reversed(steps):
        value = {key: [None] * index + [value]}
    path = ".".join(f"{key}[{index}]" for key, index in steps)

    assert leaf == json_path(value, path)
