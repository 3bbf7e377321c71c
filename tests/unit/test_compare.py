"""One comparison rule for equals, min/max and regex, wherever a scenario writes them."""

from __future__ import annotations

import pytest

from test_coordinator.domain.compare import equal, impossible, mismatch


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        (5, "5", True),  # a command's output "5" against equals: 5
        (5, "5\n", True),
        (5.0, "5", True),
        ("5", 5, True),
        (True, "true", True),
        (None, "null", True),
        (True, 1, False),  # JSON: true is not 1
        (1, True, False),
        (1, 1.0, True),
        (5, "five", False),
        (True, "True", False),
        ({"a": [True]}, {"a": [1]}, False),
        ({"a": [1, 2]}, {"a": ["1", 2]}, True),
        ("healthy", "healthy", True),
        ("5", "5.0", False),  # text against text compares as text
    ],
)
def test_equals_compares_as_json_and_reads_text_as_what_it_spells(
    expected: object, actual: object, same: bool
) -> None:
    assert same == equal(expected, actual)


def test_min_max_and_regex_give_one_phrase_each() -> None:
    assert [] == mismatch("42", equals=42, min=1, max=100, regex=r"^4")
    assert ["value 'x' is not a number"] == mismatch("x", min=1)
    assert ["value 0 is below the minimum 1", "value '0' does not match /^4/"] == mismatch(
        "0", min=1, regex=r"^4"
    )
    assert ["value true is not a number"] == mismatch(True, max=3)


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ({"min": 5, "max": 3}, "min 5 is above max 3"),
        ({"equals": "up", "min": 1}, "is not a number, so min/max can never hold"),
        ({"equals": 10, "max": 3}, "lies outside min/max"),
        ({"equals": "ready", "regex": "^go"}, "does not match regex"),
    ],
)
def test_comparisons_that_can_never_hold_are_named(given: dict[str, object], why: str) -> None:
    found = impossible(**given)  # type: ignore[arg-type]
    assert found is not None and why in found


def test_comparisons_that_can_hold_are_not_flagged() -> None:
    assert impossible(equals="5", min=1, max=9, regex="5") is None
    assert impossible(min=1, max=1) is None


def test_a_command_printing_5_meets_equals_5_in_a_condition() -> None:
    """The defect: ``equals: 5`` on a command's output ``5`` failed ("value '5', expected 5")."""
    from test_coordinator.engine.conditions import judge
    from test_coordinator.scenario.probes import Condition

    condition = Condition.model_validate({"command": {"argv": ["echo", "5"]}, "equals": 5})

    assert judge(condition, "5", "exit 0").ok
    assert not judge(condition, "6", "exit 0").ok


@pytest.mark.parametrize(
    "given", [{"min": float("nan")}, {"max": float("inf")}, {"equals": float("nan")}]
)
def test_a_bound_that_is_not_finite_can_never_hold(given: dict[str, object]) -> None:
    found = impossible(**given)  # type: ignore[arg-type]
    assert found is not None and "not a finite number" in found
