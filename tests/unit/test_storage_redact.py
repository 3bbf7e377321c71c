"""Passwords in URLs never reach a log line or a health detail."""

from __future__ import annotations

import pytest

from test_coordinator.adapters.redact import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:s3cr%40t@db:5432/test", "postgresql://app:***@db:5432/test"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://user:pw@cache", "rediss://user:***@cache"),
        ("redis://cache:6379/15", "redis://cache:6379/15"),
        ("postgresql://app@db/test", "postgresql://app@db/test"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert expected == redact_url(url)


def test_redact_text_masks_every_url_in_a_message() -> None:
    message = "a postgresql+asyncpg://u:pw1@h/db b redis://:pw2@r:6379 c"

    assert redact_text(message) == "a postgresql+asyncpg://u:***@h/db b redis://:***@r:6379 c"
